//! The audit log as one self-contained HTML page, for people: what ran, what
//! was refused, where drift was found and rolled back, which upgrades were
//! accepted, per tenant, with fuel and duration charts and the verification
//! status of the log and its latest checkpoint.
//!
//! The page needs nothing but itself: the CSS, the script and the charts
//! (inline SVG) are in the file, and its Content-Security-Policy
//! (`default-src 'none'`, the script and the style admitted by their SHA-256)
//! forbids every fetch, so opening it on an air-gapped machine or attaching
//! it to an incident ticket leaks nothing and loads nothing.
//!
//! Every string taken from the log is attacker-influenced (a tenant name, a
//! bundle path, a refusal message) and is HTML-escaped before it is written,
//! in text and in attribute values alike; control characters and the Unicode
//! bidirectional overrides are shown as visible escapes, so a name cannot
//! reorder what is displayed around it. Even if an escape were missed, the
//! policy would refuse to run any script but ours.
//!
//! Each timeline row carries `data-kind` (the event kind), `data-category`,
//! `data-seq` and, where known, `data-tenant`, so tools and browser tests can
//! count events in the rendered page. The script fills the per-kind counts
//! table and the category filters and marks `<body data-script="ran">`.
//!
//! The library only renders; reading and verifying the log is the caller's
//! job (see `guardian report`), and the caller says what it found in a
//! [`ReportStatus`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use audit::{Entry, VerifyReport};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Runs drawn per tenant chart at most (the newest); the table lists them all.
pub const MAX_CHART_RUNS: usize = 500;
/// Characters of one displayed field value at most; longer values are cut
/// with an ellipsis (the audit log keeps the whole value).
pub const MAX_FIELD_CHARS: usize = 240;

/// Fields shown in a timeline row's summary, in this order, when present.
const SUMMARY_FIELDS: &[&str] = &[
    "version",
    "from_version",
    "to_version",
    "outcome",
    "exit_code",
    "fuel_consumed",
    "wall_time_us",
    "stage",
    "reason_code",
    "reason",
    "path",
    "action",
    "how",
    "file",
    "restored",
    "identical",
    "key_id",
    "quarantined_to",
];

/// What the caller found out about the log before rendering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportStatus {
    /// The log's path, as the reader should see it.
    pub log: String,
    /// When the page was made (RFC 3339).
    pub generated_at: String,
    /// The outcome of verifying the whole log against its signed checkpoint.
    pub verification: LogVerification,
    /// Entries in the log when it was read (the page may show fewer: see `shown_from_seq`).
    pub entries_read: u64,
    /// Lines that could not be read as entries, with the reason.
    pub unreadable_lines: Vec<String>,
}

/// The verdict of `audit::verify_log`, in the terms the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogVerification {
    /// Every entry hashes, chains and is in sequence, and the checkpoint's
    /// signature and root match.
    Intact {
        entries: u64,
        root: String,
        checkpoint: Option<CheckpointSummary>,
        /// Entries after the checkpoint, which no signature covers yet.
        uncheckpointed_entries: u64,
        uncommitted_tail_bytes: u64,
    },
    /// The log or its checkpoint was changed; `reason` says how.
    Tampered { first_bad_seq: Option<u64>, reason: String },
}

/// The latest signed checkpoint of an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    pub root: String,
}

impl LogVerification {
    /// The page's view of a verification report.
    pub fn from_report(report: &VerifyReport) -> Self {
        match report {
            VerifyReport::Intact(intact) => LogVerification::Intact {
                entries: intact.entries,
                root: intact.root.to_hex(),
                checkpoint: intact.checkpoint.as_ref().map(|c| CheckpointSummary {
                    origin: c.origin.clone(),
                    size: c.size,
                    root: c.root.to_hex(),
                }),
                uncheckpointed_entries: intact.uncheckpointed_entries,
                uncommitted_tail_bytes: intact.uncommitted_tail_bytes,
            },
            VerifyReport::Tampered(tampering) => LogVerification::Tampered {
                first_bad_seq: tampering.first_bad_seq,
                reason: tampering.reason.to_string(),
            },
        }
    }

    /// `intact` or `tampered`: the page's `data-status`.
    pub fn code(&self) -> &'static str {
        match self {
            LogVerification::Intact { .. } => "intact",
            LogVerification::Tampered { .. } => "tampered",
        }
    }

    /// How many leading entries a signature covers: the checkpoint's size
    /// for an intact log, none for a tampered one.
    fn covered_entries(&self) -> u64 {
        match self {
            LogVerification::Intact { checkpoint, .. } => checkpoint.as_ref().map_or(0, |c| c.size),
            LogVerification::Tampered { .. } => 0,
        }
    }
}

/// What a timeline row is about, for colours and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Audit,
    Drift,
    Failure,
    Other,
    Refusal,
    Rollback,
    Run,
    Trust,
    Upgrade,
}

impl Category {
    /// Every category, in the order the filters list them.
    pub const ALL: [Category; 9] = [
        Category::Run,
        Category::Failure,
        Category::Refusal,
        Category::Drift,
        Category::Rollback,
        Category::Upgrade,
        Category::Trust,
        Category::Audit,
        Category::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Category::Audit => "audit",
            Category::Drift => "drift",
            Category::Failure => "failure",
            Category::Other => "other",
            Category::Refusal => "refusal",
            Category::Rollback => "rollback",
            Category::Run => "run",
            Category::Trust => "trust",
            Category::Upgrade => "upgrade",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Category::Audit => "audit log",
            Category::Drift => "drift",
            Category::Failure => "runs that failed",
            Category::Other => "other",
            Category::Refusal => "refusals",
            Category::Rollback => "rollbacks",
            Category::Run => "runs that exited 0",
            Category::Trust => "signing and trust",
            Category::Upgrade => "upgrades",
        }
    }

    /// The category of an entry: a run that did not exit 0 is a failure.
    pub fn of(kind: &str, data: &Map<String, Value>) -> Category {
        match kind {
            "run.finished" => {
                let exited = data.get("outcome").and_then(Value::as_str) == Some("exited");
                let zero = data.get("exit_code").and_then(Value::as_i64) == Some(0);
                if exited && zero { Category::Run } else { Category::Failure }
            }
            "run.refused" | "bundle.refused" => Category::Refusal,
            "module.upgraded" => Category::Upgrade,
            "module.trusted" | "module.signed" | "module.rebuilt" | "bundle.verified" => Category::Trust,
            _ if kind.starts_with("drift.") => Category::Drift,
            _ if kind.starts_with("rollback.") => Category::Rollback,
            _ if kind.starts_with("audit.") => Category::Audit,
            _ => Category::Other,
        }
    }
}

/// The tenant an entry is about: its `tenant` field, or for a refused run
/// (which may be refused before the manifest is read) the name of its bundle
/// directory. `None` for host events (the guardian starting, the audit log).
pub fn tenant_of(entry: &Entry) -> Option<String> {
    if let Some(tenant) = entry.data.get("tenant").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return Some(tenant.to_string());
    }
    let bundle = entry.data.get("bundle").and_then(Value::as_str)?;
    let name = bundle.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty())?;
    Some(name.to_string())
}

/// Appends `text` to `out`, HTML-escaped for text and for double- or
/// single-quoted attribute values. Control characters and bidirectional
/// formatting characters become visible `\u{…}` escapes.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// `text`, HTML-escaped (see [`push_escaped`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A field value as displayed: strings as they are, everything else as JSON,
/// cut at [`MAX_FIELD_CHARS`].
fn display_value(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_FIELD_CHARS {
        text.chars().take(MAX_FIELD_CHARS).collect::<String>() + "…"
    } else {
        text
    }
}

fn summary(data: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for field in SUMMARY_FIELDS {
        match data.get(*field) {
            None | Some(Value::Null) => {}
            Some(value) => parts.push(format!("{field}={}", display_value(value))),
        }
    }
    parts.join(" ")
}

fn time_text(entry: &Entry) -> String {
    signer::manifest::format_rfc3339(entry.time)
}

/// Standard base64 with padding (RFC 4648), for the policy's hashes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The CSP source expression admitting exactly this inline script or style.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())))
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#1d2330;background:#fafbfc}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0}th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #e5e8eb;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-all}
.status{padding:.7em 1em;border-radius:6px;margin:.8em 0;border:1px solid}
.status-intact{background:#e9f7ef;border-color:#2da44e}.status-tampered{background:#ffebe9;border-color:#cf222e}
.status b{font-size:1.1em}.warn{color:#9a6700}.bad{color:#cf222e;font-weight:600}
.filters label{margin-right:1em;white-space:nowrap}
.chip{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em;vertical-align:-.05em}
.c-run{fill:#2da44e;background:#2da44e}.c-failure{fill:#bf8700;background:#bf8700}.c-refusal{fill:#cf222e;background:#cf222e}
.c-drift{fill:#8250df;background:#8250df}.c-rollback{fill:#0969da;background:#0969da}.c-upgrade{fill:#1a7f37;background:#1a7f37}
.c-trust{fill:#57606a;background:#57606a}.c-audit{fill:#d1242f;background:#d1242f}.c-other{fill:#8c959f;background:#8c959f}
tr.event td:first-child,td.time{white-space:nowrap}tr.uncovered td.seq::after{content:' \\2020';color:#9a6700}
svg{display:block;background:#fff;border:1px solid #e5e8eb;margin:.3em 0}svg text{font:11px system-ui,sans-serif;fill:#57606a}
svg .axis{stroke:#d0d7de}svg .bar{fill:#0969da}svg .bar.failed{fill:#bf8700}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}
";

const SCRIPT: &str = "
(function () {
  var rows = document.querySelectorAll('tr[data-kind]');
  var counts = {};
  rows.forEach(function (row) { counts[row.dataset.kind] = (counts[row.dataset.kind] || 0) + 1; });
  var body = document.getElementById('kind-counts');
  Object.keys(counts).sort().forEach(function (kind) {
    var tr = document.createElement('tr');
    tr.dataset.countKind = kind;
    var name = document.createElement('td');
    name.textContent = kind;
    var count = document.createElement('td');
    count.className = 'num';
    count.textContent = String(counts[kind]);
    tr.appendChild(name);
    tr.appendChild(count);
    body.appendChild(tr);
  });
  var shown = document.getElementById('shown-count');
  function apply() {
    var hidden = {};
    document.querySelectorAll('input[data-filter]').forEach(function (box) { hidden[box.dataset.filter] = !box.checked; });
    var visible = 0;
    rows.forEach(function (row) {
      row.hidden = !!hidden[row.dataset.category];
      if (!row.hidden) { visible += 1; }
    });
    shown.textContent = String(visible);
  }
  document.querySelectorAll('input[data-filter]').forEach(function (box) { box.addEventListener('change', apply); });
  apply();
  document.body.dataset.script = 'ran';
})();
";

/// One run's numbers, for the charts.
struct RunPoint {
    seq: u64,
    time: String,
    fuel: Option<u64>,
    wall_time_us: Option<u64>,
    exited_zero: bool,
}

/// Everything the page says about one tenant.
#[derive(Default)]
struct TenantView<'a> {
    entries: Vec<&'a Entry>,
    counts: BTreeMap<Category, u64>,
    runs: Vec<RunPoint>,
    last_version: Option<u64>,
}

/// Renders the whole page. `entries` are shown in the order given (normally
/// log order); `status` says what verification found.
pub fn render_html(entries: &[Entry], status: &ReportStatus) -> String {
    let mut tenants: BTreeMap<String, TenantView<'_>> = BTreeMap::new();
    let mut host: Vec<&Entry> = Vec::new();
    for entry in entries {
        let Some(tenant) = tenant_of(entry) else {
            host.push(entry);
            continue;
        };
        let view = tenants.entry(tenant).or_default();
        let category = Category::of(&entry.kind, &entry.data);
        *view.counts.entry(category).or_default() += 1;
        if let Some(version) =
            entry.data.get("to_version").or_else(|| entry.data.get("version")).and_then(Value::as_u64)
            && matches!(
                category,
                Category::Run | Category::Failure | Category::Upgrade | Category::Rollback | Category::Trust
            )
        {
            view.last_version = Some(version);
        }
        if entry.kind == "run.finished" {
            view.runs.push(RunPoint {
                seq: entry.seq,
                time: time_text(entry),
                fuel: entry.data.get("fuel_consumed").and_then(Value::as_u64),
                wall_time_us: entry.data.get("wall_time_us").and_then(Value::as_u64),
                exited_zero: category == Category::Run,
            });
        }
        view.entries.push(entry);
    }
    let (first_time, last_time) = time_range(entries);
    let covered = status.verification.covered_entries();

    let mut out = String::with_capacity(16 * 1024 + entries.len() * 400);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src {}; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'\">",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    );
    out.push_str(
        "<meta name=\"referrer\" content=\"no-referrer\">\n<meta name=\"viewport\" content=\"width=device-width\">\n",
    );
    out.push_str("<title>Night Core audit report: ");
    push_escaped(&mut out, &status.log);
    out.push_str("</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<h1>Night Core audit report</h1>\n<p>Log <code>");
    push_escaped(&mut out, &status.log);
    out.push_str("</code>, generated ");
    push_escaped(&mut out, &status.generated_at);
    let _ = writeln!(out, ". {} entries read, {} shown.</p>", status.entries_read, entries.len());

    render_status(&mut out, status);
    render_overview(&mut out, &tenants, &host);
    render_filters(&mut out, entries.len());
    for (name, view) in &tenants {
        render_tenant(&mut out, name, view, first_time, last_time, covered);
    }
    if !host.is_empty() {
        out.push_str("<section class=\"host\">\n<h2>Host events</h2>\n<p>Events about the host rather than one tenant: the guardian starting and stopping, the audit log itself.</p>\n");
        render_rows(&mut out, &host, covered);
        out.push_str("</section>\n");
    }
    out.push_str("<h2>Events per kind</h2>\n<p>Counted in this page by its script.</p>\n<table><thead><tr><th>kind</th><th class=\"num\">events</th></tr></thead><tbody id=\"kind-counts\"></tbody></table>\n");
    out.push_str("<p class=\"mono\">\u{2020} marks entries after the latest signed checkpoint: they chain correctly, but no signature covers them yet.</p>\n");
    out.push_str("<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

fn time_range(entries: &[Entry]) -> (i64, i64) {
    let times = entries.iter().map(|e| e.time.unix_timestamp());
    let first = times.clone().min().unwrap_or(0);
    let last = times.max().unwrap_or(0);
    (first, last)
}

fn render_status(out: &mut String, status: &ReportStatus) {
    let _ = writeln!(
        out,
        "<section id=\"status\" class=\"status status-{0}\" data-status=\"{0}\">",
        status.verification.code()
    );
    match &status.verification {
        LogVerification::Intact { entries, root, checkpoint, uncheckpointed_entries, uncommitted_tail_bytes } => {
            let _ = writeln!(
                out,
                "<b>Verified: intact.</b> {entries} entries hash, chain and are in sequence; Merkle root <code>{}</code>.<br>",
                escape(root)
            );
            match checkpoint {
                Some(c) => {
                    out.push_str("Latest signed checkpoint: origin <code>");
                    push_escaped(out, &c.origin);
                    let _ = writeln!(
                        out,
                        "</code>, covers <span id=\"checkpoint-size\">{}</span> entries, root <code>{}</code>; its signature verifies with the trusted log key.<br>",
                        c.size,
                        escape(&c.root)
                    );
                }
                None => out.push_str("The log is empty and has no checkpoint.<br>\n"),
            }
            if *uncheckpointed_entries > 0 {
                let _ = writeln!(
                    out,
                    "<span class=\"warn\">Not yet covered by a signature: {uncheckpointed_entries} entries after the checkpoint</span> (marked \u{2020}); run <code>guardian audit checkpoint</code> or wait for the next signed append.<br>"
                );
            }
            if *uncommitted_tail_bytes > 0 {
                let _ = writeln!(
                    out,
                    "<span class=\"warn\">{uncommitted_tail_bytes} bytes of a torn, never-committed last line</span> will be moved aside by the next writer.<br>"
                );
            }
        }
        LogVerification::Tampered { first_bad_seq, reason } => {
            out.push_str("<b class=\"bad\">TAMPERED.</b> ");
            if let Some(seq) = first_bad_seq {
                let _ = write!(out, "First bad entry: seq {seq}. ");
            }
            out.push_str("Reason: ");
            push_escaped(out, reason);
            out.push_str(".<br>Nothing on this page can be trusted beyond what an intact copy of the log confirms; see ops/runbook.md, <i>audit.tampered</i>.<br>\n");
        }
    }
    if !status.unreadable_lines.is_empty() {
        let _ = writeln!(
            out,
            "<span class=\"bad\">{} lines could not be read as entries:</span><ul>",
            status.unreadable_lines.len()
        );
        for line in status.unreadable_lines.iter().take(20) {
            out.push_str("<li><code>");
            push_escaped(out, line);
            out.push_str("</code></li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn render_overview(out: &mut String, tenants: &BTreeMap<String, TenantView<'_>>, host: &[&Entry]) {
    out.push_str(
        "<h2>Tenants</h2>\n<table id=\"tenants\"><thead><tr><th>tenant</th><th class=\"num\">last version</th>",
    );
    for category in Category::ALL {
        let _ = write!(
            out,
            "<th class=\"num\"><span class=\"chip c-{}\"></span>{}</th>",
            category.code(),
            category.label()
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    for (name, view) in tenants {
        out.push_str("<tr data-tenant-row=\"");
        push_escaped(out, name);
        out.push_str("\"><td><code>");
        push_escaped(out, name);
        out.push_str("</code></td><td class=\"num\">");
        if let Some(version) = view.last_version {
            let _ = write!(out, "{version}");
        }
        out.push_str("</td>");
        for category in Category::ALL {
            let _ = write!(out, "<td class=\"num\">{}</td>", view.counts.get(&category).copied().unwrap_or(0));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    let _ = writeln!(out, "<p>{} tenants; {} host events.</p>", tenants.len(), host.len());
}

fn render_filters(out: &mut String, total: usize) {
    out.push_str("<h2>Timeline</h2>\n<p class=\"filters\">Show: ");
    for category in Category::ALL {
        let _ = write!(
            out,
            "<label><input type=\"checkbox\" checked data-filter=\"{0}\"><span class=\"chip c-{0}\"></span>{1}</label> ",
            category.code(),
            category.label()
        );
    }
    let _ = writeln!(out, "</p>\n<p><span id=\"shown-count\">{total}</span> of {total} events shown.</p>");
}

fn render_tenant(out: &mut String, name: &str, view: &TenantView<'_>, first: i64, last: i64, covered: u64) {
    out.push_str("<section class=\"tenant\" data-tenant=\"");
    push_escaped(out, name);
    out.push_str("\">\n<h3>Tenant <code>");
    push_escaped(out, name);
    out.push_str("</code></h3>\n");
    render_strip(out, &view.entries, first, last);
    if !view.runs.is_empty() {
        out.push_str("<div class=\"charts\">");
        render_bars(out, "Fuel consumed per run", "fuel", &view.runs, |r| r.fuel, |v| v.to_string());
        render_bars(
            out,
            "Wall time per run (ms)",
            "wall-time",
            &view.runs,
            |r| r.wall_time_us,
            |v| format!("{:.1}", v as f64 / 1000.0),
        );
        out.push_str("</div>\n");
    }
    render_rows(out, &view.entries, covered);
    out.push_str("</section>\n");
}

/// A horizontal strip: one mark per event at its time, coloured by category.
fn render_strip(out: &mut String, entries: &[&Entry], first: i64, last: i64) {
    const WIDTH: f64 = 1000.0;
    const HEIGHT: f64 = 34.0;
    const MARGIN: f64 = 8.0;
    let span = (last - first).max(1) as f64;
    let _ = write!(
        out,
        "<svg class=\"strip\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"events over time\">"
    );
    let _ = write!(out, "<line class=\"axis\" x1=\"{MARGIN}\" y1=\"17\" x2=\"{}\" y2=\"17\"/>", WIDTH - MARGIN);
    for entry in entries {
        let x = MARGIN + (entry.time.unix_timestamp() - first) as f64 / span * (WIDTH - 2.0 * MARGIN);
        let category = Category::of(&entry.kind, &entry.data);
        let _ = write!(out, "<circle class=\"c-{}\" cx=\"{x:.1}\" cy=\"17\" r=\"5\"><title>", category.code());
        let _ = write!(out, "seq {} {} ", entry.seq, time_text(entry));
        push_escaped(out, &entry.kind);
        out.push_str("</title></circle>");
    }
    out.push_str("</svg>\n");
}

/// A bar chart of one number per run, newest [`MAX_CHART_RUNS`] runs.
fn render_bars(
    out: &mut String,
    title: &str,
    class: &str,
    runs: &[RunPoint],
    value: impl Fn(&RunPoint) -> Option<u64>,
    label: impl Fn(u64) -> String,
) {
    const WIDTH: f64 = 480.0;
    const HEIGHT: f64 = 140.0;
    const LEFT: f64 = 8.0;
    const TOP: f64 = 18.0;
    const BOTTOM: f64 = 16.0;
    let runs = &runs[runs.len().saturating_sub(MAX_CHART_RUNS)..];
    let max = runs.iter().filter_map(&value).max().unwrap_or(0);
    let _ = write!(
        out,
        "<svg class=\"chart {class}\" data-chart=\"{class}\" data-runs=\"{}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"{title}\">",
        runs.len()
    );
    let _ = write!(out, "<text x=\"{LEFT}\" y=\"12\">{title}: max {}, {} runs</text>", label(max), runs.len());
    let base = HEIGHT - BOTTOM;
    let _ = write!(out, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>", WIDTH - LEFT);
    let slot = (WIDTH - 2.0 * LEFT) / runs.len().max(1) as f64;
    let bar = (slot * 0.8).clamp(0.5, 24.0);
    for (i, run) in runs.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let (height, shown) = match value(run) {
            Some(v) if max > 0 => ((v as f64 / max as f64) * (base - TOP), label(v)),
            Some(v) => (0.0, label(v)),
            None => (0.0, "unknown".to_string()),
        };
        let failed = if run.exited_zero { "" } else { " failed" };
        let _ = write!(
            out,
            "<rect class=\"bar{failed}\" x=\"{x:.2}\" y=\"{:.2}\" width=\"{bar:.2}\" height=\"{height:.2}\"><title>seq {} {} {}</title></rect>",
            base - height,
            run.seq,
            escape(&run.time),
            escape(&shown)
        );
    }
    out.push_str("</svg>");
}

fn render_rows(out: &mut String, entries: &[&Entry], covered: u64) {
    out.push_str("<table class=\"timeline\"><thead><tr><th>seq</th><th>time</th><th>kind</th><th>by</th><th>details</th></tr></thead><tbody>\n");
    for entry in entries {
        let category = Category::of(&entry.kind, &entry.data);
        let uncovered = if entry.seq >= covered { " uncovered" } else { "" };
        out.push_str("<tr class=\"event");
        out.push_str(uncovered);
        out.push_str("\" data-kind=\"");
        push_escaped(out, &entry.kind);
        let _ = write!(out, "\" data-category=\"{}\" data-seq=\"{}\"", category.code(), entry.seq);
        if let Some(tenant) = tenant_of(entry) {
            out.push_str(" data-tenant=\"");
            push_escaped(out, &tenant);
            out.push('"');
        }
        let _ = write!(
            out,
            "><td class=\"seq num\">{}</td><td class=\"mono time\">{}</td><td><span class=\"chip c-{}\"></span>",
            entry.seq,
            time_text(entry),
            category.code()
        );
        push_escaped(out, &entry.kind);
        out.push_str("</td><td class=\"mono\">");
        push_escaped(out, &entry.actor.binary);
        out.push('@');
        push_escaped(out, &entry.actor.host);
        out.push_str("</td><td class=\"mono\">");
        push_escaped(out, &summary(&entry.data));
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{Actor, Sha256Hash};
    use serde_json::json;

    fn entry(seq: u64, kind: &str, data: Value) -> Entry {
        let Value::Object(data) = data else { panic!("data must be an object") };
        Entry {
            actor: Actor::new("runtime", "node-1"),
            data,
            hash: Sha256Hash([1; 32]),
            kind: kind.to_string(),
            prev: Sha256Hash([0; 32]),
            seq,
            time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + seq as i64 * 60).unwrap(),
        }
    }

    fn status() -> ReportStatus {
        ReportStatus {
            log: "state/audit.log".into(),
            generated_at: "2027-01-15T08:00:00Z".into(),
            verification: LogVerification::Intact {
                entries: 3,
                root: "ab".repeat(32),
                checkpoint: Some(CheckpointSummary {
                    origin: "nightcore.example/node-1".into(),
                    size: 2,
                    root: "ab".repeat(32),
                }),
                uncheckpointed_entries: 1,
                uncommitted_tail_bytes: 0,
            },
            entries_read: 3,
            unreadable_lines: Vec::new(),
        }
    }

    fn run(seq: u64, tenant: &str, exit_code: i64) -> Entry {
        entry(
            seq,
            "run.finished",
            json!({"tenant": tenant, "version": 3, "outcome": "exited", "exit_code": exit_code, "fuel_consumed": 1000 * (seq + 1), "wall_time_us": 2500}),
        )
    }

    #[test]
    fn escaping_covers_markup_quotes_controls_and_bidi_overrides() {
        assert_eq!(escape("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(escape("a\"b&c"), "a&quot;b&amp;c");
        assert_eq!(escape("nul\u{0}bell\u{7}"), "nul\\u{0}bell\\u{7}");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("plain tenant-1_x"), "plain tenant-1_x");
    }

    #[test]
    fn hostile_tenant_names_and_fields_are_escaped_everywhere() {
        let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
        let entries = vec![
            run(0, evil, 0),
            entry(
                1,
                "run.refused",
                json!({"bundle": format!("/deploy/{evil}"), "stage": "verify", "reason": "bad_signature", "detail": evil}),
            ),
            entry(
                2,
                "drift.detected",
                json!({"tenant": evil, "path": evil, "reason_code": "hash_mismatch", "reason": evil}),
            ),
        ];
        let html = render_html(&entries, &status());
        assert_eq!(html.matches("<script").count(), 1, "only the page's own script may appear");
        assert!(!html.contains("<img"), "an injected element survived");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // Two rows and the tenant's section; the refused run is filed under its bundle directory's name.
        assert_eq!(html.matches("data-tenant=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img").count(), 3);
        assert!(html.contains("data-tenant=\"script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;\""));
    }

    #[test]
    fn rows_carry_kind_category_seq_and_tenant() {
        let entries = vec![
            run(0, "hello", 0),
            run(1, "hello", 3),
            entry(2, "run.refused", json!({"bundle": "/srv/deploy/sieve", "stage": "verify", "reason": "expired"})),
            entry(3, "module.upgraded", json!({"tenant": "hello", "from_version": 3, "to_version": 4})),
            entry(4, "rollback.completed", json!({"tenant": "hello", "version": 4, "reason_code": "downgrade"})),
            entry(5, "guardian.started", json!({"tenants": 2, "pid": 7})),
        ];
        let html = render_html(&entries, &status());
        assert_eq!(html.matches("data-kind=\"run.finished\"").count(), 2);
        assert!(
            html.contains("data-kind=\"run.finished\" data-category=\"failure\" data-seq=\"1\" data-tenant=\"hello\"")
        );
        assert!(
            html.contains("data-kind=\"run.refused\" data-category=\"refusal\" data-seq=\"2\" data-tenant=\"sieve\"")
        );
        assert!(html.contains("data-kind=\"module.upgraded\" data-category=\"upgrade\""));
        assert!(html.contains("data-kind=\"guardian.started\" data-category=\"other\" data-seq=\"5\">"));
        // Entries from seq 2 on are after the checkpoint of size 2.
        assert!(html.contains("<tr class=\"event uncovered\" data-kind=\"run.refused\""));
        assert!(html.contains("<tr class=\"event\" data-kind=\"run.finished\" data-category=\"run\" data-seq=\"0\""));
        assert!(html.contains("data-chart=\"fuel\" data-runs=\"2\""));
        assert!(html.contains("data-status=\"intact\""));
    }

    #[test]
    fn the_page_fetches_nothing_and_admits_only_its_own_script_and_style() {
        let html = render_html(&[run(0, "hello", 0)], &status());
        for forbidden in ["http:", "https:", "src=", "href=", "@import", "url("] {
            assert!(!html.contains(forbidden), "the page contains {forbidden}");
        }
        assert!(html.contains(&format!("script-src {}", csp_hash(SCRIPT))));
        assert!(html.contains(&format!("style-src {}", csp_hash(STYLE))));
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn a_tampered_log_is_announced_with_its_reason() {
        let mut status = status();
        status.verification = LogVerification::Tampered { first_bad_seq: Some(7), reason: "entry edited: <b>".into() };
        let html = render_html(&[], &status);
        assert!(html.contains("data-status=\"tampered\""));
        assert!(html.contains("First bad entry: seq 7."));
        assert!(html.contains("entry edited: &lt;b&gt;"));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn charts_keep_the_newest_runs_only() {
        let entries: Vec<Entry> = (0..(MAX_CHART_RUNS as u64 + 20)).map(|seq| run(seq, "busy", 0)).collect();
        let html = render_html(&entries, &status());
        assert!(html.contains(&format!("data-chart=\"fuel\" data-runs=\"{MAX_CHART_RUNS}\"")));
        assert_eq!(html.matches("data-kind=\"run.finished\"").count(), MAX_CHART_RUNS + 20);
    }
}
