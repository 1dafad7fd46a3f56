"""Tasks: one folder each (data, model, named losses, evaluation, metrics) behind one contract."""
