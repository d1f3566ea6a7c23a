"""maild/policy package."""
