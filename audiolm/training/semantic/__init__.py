"""Training the semantic model: its task (batch -> loss) and what only training needs."""
