"""Many runs: grid sweeps, Optuna search, blends of runs and the ensemble folders they make."""
