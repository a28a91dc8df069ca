"""An application module that fails while being imported."""
import not_installed_dependency  # noqa: F401

application = None
