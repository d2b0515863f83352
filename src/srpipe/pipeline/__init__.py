"""Stage 3: the cached pipeline (`srpipe run`, `status`, `gc`) and its HTML report."""
