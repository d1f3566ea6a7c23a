"""The shipped mail templates (one folder per language), installed as ``maild.templates``."""
