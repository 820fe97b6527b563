"""netlab bench: see `netlab.bench.core`. (Kept light: the load generator imports this package.)"""
