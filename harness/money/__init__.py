"""Money: token estimates, the pricing table's rate choice, model lifecycles, local cost, projections, the dollar
budget and break-even volume."""
