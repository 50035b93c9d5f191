"""The step runtime both orchestrators share (see `step`)."""
