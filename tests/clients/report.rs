//! Scenario results, runtime by runtime: every scenario runs under the runc control and under
//! lasso-runc, and the test fails at the end listing each failure with its runtime, so a
//! failure of the control (the machine or the test) is told apart from one of lasso-runc.

pub struct Report {
    client: &'static str,
    rows: Vec<(String, String, Result<(), String>)>,
}

impl Report {
    pub fn new(client: &'static str) -> Self {
        Self {
            client,
            rows: Vec::new(),
        }
    }

    /// Runs one scenario, recording its outcome (a panic inside counts as a failure).
    pub fn check(&mut self, runtime: &str, scenario: &str, f: impl FnOnce() -> Result<(), String>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        });
        eprintln!(
            "{} [{runtime}] {scenario}: {}",
            self.client,
            match &r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        self.rows
            .push((runtime.to_string(), scenario.to_string(), r));
    }

    /// Records a scenario the client cannot express, so the table stays honest.
    pub fn not_applicable(&mut self, runtime: &str, scenario: &str, why: &str) {
        eprintln!("{} [{runtime}] {scenario}: not run: {why}", self.client);
    }

    /// Panics listing every failure, if any.
    pub fn finish(self) {
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter_map(|(rt, sc, r)| r.as_ref().err().map(|e| format!("[{rt}] {sc}: {e}")))
            .collect();
        assert!(
            failed.is_empty(),
            "{} scenarios failed:\n{}",
            self.client,
            failed.join("\n")
        );
    }
}
