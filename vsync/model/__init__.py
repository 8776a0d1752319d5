"""Model layer: repository, config, lock, manifests, working-tree scan, snapshots."""
