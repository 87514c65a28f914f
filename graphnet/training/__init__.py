"""Training: the host side of it. The training config, the data files, learning-rate schedules,
metrics, checkpoints, L-BFGS's host-driven loop and the loop that runs training steps (the update
graphs of graphnet/transforms/optim and the gradient graphs of graphnet/transforms/autodiff) on a
back end. It sits above the back ends, which it drives, and below the CLI commands."""
