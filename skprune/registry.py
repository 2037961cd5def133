"""Names of the built-in parts, mapped to their classes.

The estimators resolve every string parameter here (``regularizer="l1"``,
``pruning="batch"``, ``strategy="bisection"``, ...); no other module imports
this one, so the parts never import each other through it. Adding a built-in
part is one class in its own module plus one line below.
"""
