"""One module per policy rule; the order lives in maild.policy.table."""
