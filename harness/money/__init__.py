"""Money: token estimates, the pricing table's rate choice, local cost, projections, the dollar budget and
break-even volume."""
