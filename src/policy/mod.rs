//! Security profiles and the command policy: which commands may run, and why. Pure code: reads
//! profile files and nothing else, so `lasso why`, the exec gate and the dashboard share one answer.
