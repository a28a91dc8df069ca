"""An application module whose import raises something else than ImportError."""
raise RuntimeError("configuration missing: DATABASE_URL")
