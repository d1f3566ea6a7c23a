"""Pure parsers: raw mail bytes to structured data. No IO, no clock, no storage."""
