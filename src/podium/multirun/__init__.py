"""Many runs: grid sweeps, Optuna search, ensemble folders (runs blended with ``inference.blends``) and merges."""
