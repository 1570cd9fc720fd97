"""HTTP edge: typed endpoints, problem details, middlewares, pagination."""
