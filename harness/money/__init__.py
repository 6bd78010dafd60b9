"""Money: token estimates, the pricing table and its rate choice, model lifecycles, projections and budgets."""
