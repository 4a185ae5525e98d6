"""Discovery: which single-cell studies GEO and ArrayExpress hold (rule discover), and the unattended refresh that runs the workflow on a schedule."""
