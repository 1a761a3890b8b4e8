"""The API fixtures (an app over the parametrized database and the anvil chains) for the hostile-input tests."""

from tests.api.conftest import make_world, world  # noqa: F401 - fixtures shared with tests/api
