"""Storage layer: chunker, chunk packs and their index, git object access, state.db."""
