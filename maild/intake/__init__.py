"""maild/intake package."""
