"""Reading notebooks and resolving kale.yaml cell references against them."""
