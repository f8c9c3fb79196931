//! Progress of downloads and unpacks: bars on a terminal, JSON lines for tools, or nothing.
//! Scripts get silence by default because bars only appear when stderr is a terminal.

use std::io::{IsTerminal, Read};

/// Where progress goes.
pub enum Progress {
    Silent,
    /// `indicatif` bars on stderr.
    Bars(indicatif::MultiProgress),
    /// One JSON object per line on stdout: `{"event":"progress","id":..,"bytes":..,"total":..}`.
    Json,
}

impl Progress {
    /// Bars when stderr is a terminal, else silence; `--quiet` and `--json` override.
    pub fn choose(quiet: bool, json: bool) -> Progress {
        if json {
            Progress::Json
        } else if quiet || !std::io::stderr().is_terminal() {
            Progress::Silent
        } else {
            Progress::Bars(indicatif::MultiProgress::new())
        }
    }

    pub fn start(&self, id: &str, total: Option<u64>) -> Bar {
        match self {
            Progress::Silent => Bar::Silent,
            Progress::Json => {
                emit(id, "start", 0, total);
                Bar::Json {
                    id: id.to_string(),
                    bytes: 0,
                    total,
                    last: 0,
                }
            }
            Progress::Bars(m) => {
                let bar = match total {
                    Some(t) => indicatif::ProgressBar::new(t),
                    None => indicatif::ProgressBar::new_spinner(),
                };
                let style = indicatif::ProgressStyle::with_template(
                    "{msg:24} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_message(short(id));
                Bar::Term(m.add(bar))
            }
        }
    }

    /// A one-off event line (JSON mode only), e.g. `{"event":"done","image":..}`.
    pub fn event(&self, value: serde_json::Value) {
        if let Progress::Json = self {
            println!("{value}");
        }
    }
}

fn short(id: &str) -> String {
    let id = id.trim_start_matches("sha256:");
    id.chars().take(24).collect()
}

fn emit(id: &str, event: &str, bytes: u64, total: Option<u64>) {
    println!(
        "{}",
        serde_json::json!({"event": event, "id": id, "bytes": bytes, "total": total})
    );
}

pub enum Bar {
    Silent,
    Term(indicatif::ProgressBar),
    Json {
        id: String,
        bytes: u64,
        total: Option<u64>,
        last: u64,
    },
}

impl Bar {
    pub fn inc(&mut self, n: u64) {
        match self {
            Bar::Silent => {}
            Bar::Term(b) => b.inc(n),
            Bar::Json {
                id,
                bytes,
                total,
                last,
            } => {
                *bytes += n;
                // One line per 4 MiB keeps the stream useful without flooding a pipe.
                if *bytes - *last >= 4 << 20 {
                    *last = *bytes;
                    emit(id, "progress", *bytes, *total);
                }
            }
        }
    }

    pub fn finish(self) {
        match self {
            Bar::Silent => {}
            Bar::Term(b) => b.finish_and_clear(),
            Bar::Json {
                id, bytes, total, ..
            } => emit(&id, "done", bytes, total),
        }
    }

    /// Counts bytes read through `inner` on this bar.
    pub fn reader<R: Read>(&mut self, inner: R) -> BarReader<'_, R> {
        BarReader { inner, bar: self }
    }
}

pub struct BarReader<'a, R> {
    inner: R,
    bar: &'a mut Bar,
}

impl<R: Read> Read for BarReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
