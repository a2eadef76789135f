"""Client-side work per detector family: one silo, one detector, train and evaluate."""
