import pytest

from envtune.bfcl.tasks import task_index


@pytest.fixture(scope="session")
def tasks():
    """All 800 tasks of the default release, by id."""
    return task_index()
