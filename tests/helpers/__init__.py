"""Helpers that more than one test module uses; a test module imports from here, never from
another test module. The live servers are in tests/peers/, the fixtures in the conftest.py files."""
