"""maild/web package."""
