"""Training the lm model: its task (batch -> loss) and what only training needs."""
