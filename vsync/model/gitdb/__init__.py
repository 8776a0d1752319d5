"""The git database: the one place where vsync reads and writes git objects and refs.

Only modules of this package import dulwich's object, pack, object-store, repo
and ref code (tests/test_architecture.py enforces it). Everything else asks
this package for typed commits, trees and manifests; dulwich and zlib errors
on damaged data become :class:`vsync.errors.DamagedRepository` (exit 3) here.
"""
