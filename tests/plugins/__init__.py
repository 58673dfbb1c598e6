"""pytest plugins: the fixtures every test module may use, loaded by tests/conftest.py."""
