//! The built-in agents. Paths are relative to the user's home; see the README's "Sandboxes" section
//! for the same table in prose.

use super::{Agent, ConfigAccess, ConfigMount, EntryKind, IfMissing};

/// Variables every agent gets from the host when they are set: terminal, locale, time zone and
/// proxies. Secrets are not here; each agent names its own keys.
macro_rules! common_env {
    ($($extra:literal),* $(,)?) => {
        &[
            "TERM", "COLORTERM", "LANG", "LANGUAGE", "LC_*", "TZ", "NO_COLOR", "FORCE_COLOR",
            "http_proxy", "https_proxy", "no_proxy", "all_proxy",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
            $($extra),*
        ]
    };
}

const fn ro_dir(path: &'static str) -> ConfigMount {
    ConfigMount {
        path,
        kind: EntryKind::Dir,
        access: ConfigAccess::ReadOnly,
        if_missing: IfMissing::Create(""),
    }
}

const fn ro_json(path: &'static str) -> ConfigMount {
    ConfigMount {
        path,
        kind: EntryKind::File,
        access: ConfigAccess::ReadOnly,
        if_missing: IfMissing::Create("{}\n"),
    }
}

/// Top-level entries of `~/.claude` that hold data, not code: they stay writable. Anything else
/// that exists there (a `local/` install of Claude Code, a status-line script) is read-only.
const CLAUDE_DATA: &[&str] = &[
    ".credentials.json",
    "history.jsonl",
    "projects",
    "todos",
    "statsig",
    "shell-snapshots",
    "file-history",
    "session-env",
    "plans",
    "debug",
    "ide",
    "logs",
    "cache",
    "paste-cache",
    "telemetry",
    "stats-cache.json",
];

const CODEX_DATA: &[&str] = &[
    "auth.json",
    "sessions",
    "archived_sessions",
    "history.jsonl",
    "log",
    "version.json",
    "models_cache.json",
];

const OPENCODE_DATA: &[&str] = &["auth.json", "storage", "log", "snapshot", "project"];

pub static AGENTS: &[Agent] = &[
    Agent {
        name: "claude-code",
        description: "Anthropic's Claude Code",
        binaries: &["claude"],
        default_args: &[],
        pass_env: common_env!(
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
            "CLAUDE_CODE_*",
            "DISABLE_TELEMETRY",
            "DISABLE_AUTOUPDATER",
        ),
        config: &[
            ConfigMount {
                path: ".claude",
                kind: EntryKind::Dir,
                access: ConfigAccess::ReadWrite {
                    writable_entries: Some(CLAUDE_DATA),
                },
                if_missing: IfMissing::Create(""),
            },
            // Hooks and permission rules live here; the host runs them on its next start.
            ro_json(".claude/settings.json"),
            ro_json(".claude/settings.local.json"),
            ro_dir(".claude/hooks"),
            ro_dir(".claude/commands"),
            ro_dir(".claude/agents"),
            ro_dir(".claude/plugins"),
            ro_dir(".claude/skills"),
            // Holds account state Claude Code must write, and also `mcpServers` entries, which
            // are commands the host runs: the sandbox gets its own copy.
            ConfigMount {
                path: ".claude.json",
                kind: EntryKind::File,
                access: ConfigAccess::PrivateCopy,
                if_missing: IfMissing::Skip,
            },
        ],
    },
    Agent {
        name: "opencode",
        description: "OpenCode",
        binaries: &["opencode"],
        default_args: &[],
        pass_env: common_env!(
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "OPENROUTER_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GROQ_API_KEY",
            "MISTRAL_API_KEY",
            "DEEPSEEK_API_KEY",
            "XAI_API_KEY",
            "OPENCODE_*",
        ),
        config: &[
            ConfigMount {
                path: ".local/share/opencode",
                kind: EntryKind::Dir,
                access: ConfigAccess::ReadWrite {
                    writable_entries: Some(OPENCODE_DATA),
                },
                if_missing: IfMissing::Create(""),
            },
            // Language servers OpenCode downloads here run on the host too.
            ro_dir(".local/share/opencode/bin"),
            // opencode.json names MCP servers and plugins, and plugin/ holds code: all read-only.
            ConfigMount {
                path: ".config/opencode",
                kind: EntryKind::Dir,
                access: ConfigAccess::ReadOnly,
                if_missing: IfMissing::Skip,
            },
        ],
    },
    Agent {
        name: "codex",
        description: "OpenAI Codex CLI",
        binaries: &["codex"],
        default_args: &[],
        pass_env: common_env!("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_*"),
        config: &[
            ConfigMount {
                path: ".codex",
                kind: EntryKind::Dir,
                access: ConfigAccess::ReadWrite {
                    writable_entries: Some(CODEX_DATA),
                },
                if_missing: IfMissing::Create(""),
            },
            // config.toml names MCP servers and the `notify` command, both run on the host.
            ConfigMount {
                path: ".codex/config.toml",
                kind: EntryKind::File,
                access: ConfigAccess::ReadOnly,
                if_missing: IfMissing::Create(""),
            },
        ],
    },
    Agent {
        name: "shell",
        description: "an interactive shell (bash, else sh)",
        binaries: &["bash", "sh"],
        default_args: &[],
        pass_env: common_env!(),
        config: &[],
    },
];
