"""The test suite, a package: helpers import as ``tests.songtools``, ``tests.pipeline.toy_stages``, ..."""
