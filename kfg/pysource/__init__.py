"""Facts about Python source: IPython syntax, scopes, parameters, cycles."""
