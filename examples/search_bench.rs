//! Search benchmark (issue 13): index throughput, query latency, index size
//! and memory of one search backend on a generated chat corpus.
//!
//! ```text
//! cargo build --release --example search_bench
//! target/release/examples/search_bench --backend tantivy --messages 1000000 --out t.json
//! target/release/examples/search_bench --backend opensearch --url http://127.0.0.1:9200 --out o.json
//! ```
//!
//! `loadtest/search-bench.sh` runs it several times per backend and prints medians.
//!
//! 1. **Corpus** (deterministic, `--seed`): `--messages` messages over `--chats`
//!    chats; `--users` users, each a member of ~20 chats; the sender of a message
//!    is a member of its chat. Busy chats are busier (a mild Zipf over chats).
//!    3–30 words from a vocabulary of 5,000 (English chat words first, then
//!    made-up ones, 3 % accented) drawn with Zipf frequencies; some messages
//!    carry a stock phrase, a URL, an emoji or a line of Chinese/Japanese/Korean; one
//!    in ten answers an earlier message of its chat. Spread over 90 days.
//! 2. **Index**: batches of `--batch` documents, one `SearchIndex::index` call
//!    each (as the server's indexer will), one at a time for tantivy and
//!    `--in-flight` at a time for OpenSearch. Reported as documents per second of
//!    the whole phase (generation included, it is reported apart and is small),
//!    and per CPU-second spent meanwhile by this process and, when it runs on
//!    this machine, OpenSearch (less bent than docs/s when the cores are shared).
//!    Position writes (`mark_indexed`) are not part of it.
//! 3. **Settle**: tantivy until its directory stops changing (background
//!    merges), OpenSearch a `_refresh`.
//! 4. **Queries**: `--queries` searches, one at a time, after `--warmup` unmeasured
//!    ones: a common word, a rare word, a 3-letter prefix, two words, or a quoted
//!    phrase; sometimes with `from:` or `after:`; scoped either like a user's
//!    search (the ~20 chats of a random user) or a chat's (one of them); page 1 of 20.
//! 5. **Size and memory**: bytes on disk per message (OpenSearch: `store.size`,
//!    then again after a force merge to one segment), this process's RSS with the
//!    index open (and OpenSearch's own, when it runs on this machine).
//!
//! Prints a summary and a markdown row; `--out` writes everything as JSON.
//! OpenSearch indices (a fresh prefix per run) are deleted at the end unless `--keep`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::{StreamExt as _, TryStreamExt as _};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use weft::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use weft::model::Page;
use weft::search::opensearch::{OpenSearchConfig, OpenSearchIndex};
use weft::search::{SearchDoc, SearchIndex, SearchRequest, TantivyIndex, query};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// 2026-01-01T00:00:00Z, the first message's time.
const START_MS: i64 = 1_767_225_600_000;
/// The corpus spans 90 days.
const SPAN_MS: i64 = 90 * 86_400_000;
const VOCABULARY: usize = 5_000;
const CHATS_PER_USER: usize = 20;
const PAGE: usize = 20;
/// How long after a change OpenSearch's cached store size is current (its
/// `index.store.stats_refresh_interval` is 10 s).
const STORE_STATS_FRESH: Duration = Duration::from_secs(11);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Tantivy,
    Opensearch,
}

#[derive(Debug, Parser)]
#[command(about = "Search benchmark: index throughput, query latency, index size, RSS")]
struct Args {
    #[arg(long, value_enum)]
    backend: Backend,
    /// Messages indexed.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Chats they are spread over.
    #[arg(long, default_value_t = 1_000)]
    chats: u64,
    /// Users (each a member of ~20 chats).
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Measured queries.
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
    /// Unmeasured queries first.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Documents per `index()` call.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// `index()` calls in flight (OpenSearch; tantivy always 1).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// The corpus's and the queries' random seed.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// tantivy: the index directory (must not exist or be empty; default a temporary one, removed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// OpenSearch's URL.
    #[arg(long, env = "WEFT_TEST_OPENSEARCH_URL")]
    url: Option<String>,
    /// OpenSearch: the index prefix (default `weft-bench-<pid>-<time>`; must be unused).
    #[arg(long)]
    index_prefix: Option<String>,
    /// OpenSearch: skip the force merge (and the size after it).
    #[arg(long)]
    no_force_merge: bool,
    /// OpenSearch: keep the indices.
    #[arg(long)]
    keep: bool,
    /// Writes the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

// ---------------------------------------------------------------------------
// The corpus

/// Frequent words of chat, in rough order of frequency (the head of the Zipf curve).
const COMMON: &[&str] = &[
    "the",
    "i",
    "you",
    "to",
    "a",
    "it",
    "and",
    "is",
    "that",
    "in",
    "we",
    "for",
    "on",
    "this",
    "of",
    "be",
    "can",
    "just",
    "have",
    "not",
    "do",
    "so",
    "but",
    "with",
    "are",
    "will",
    "me",
    "my",
    "if",
    "what",
    "at",
    "no",
    "yes",
    "ok",
    "now",
    "was",
    "get",
    "think",
    "know",
    "there",
    "all",
    "like",
    "out",
    "up",
    "one",
    "about",
    "when",
    "they",
    "from",
    "or",
    "need",
    "good",
    "let",
    "see",
    "go",
    "time",
    "today",
    "thanks",
    "still",
    "back",
    "how",
    "should",
    "would",
    "also",
    "here",
    "some",
    "then",
    "make",
    "work",
    "new",
    "check",
    "tomorrow",
    "look",
    "sure",
    "it's",
    "i'm",
    "don't",
    "meeting",
    "please",
    "later",
    "again",
    "right",
    "maybe",
    "build",
    "test",
    "deploy",
    "fix",
    "issue",
    "branch",
    "release",
    "server",
    "cluster",
    "review",
    "merge",
    "config",
    "error",
    "logs",
    "latency",
    "team",
    "morning",
    "lunch",
    "coffee",
    "week",
    "friday",
    "monday",
    "call",
    "doc",
    "draft",
    "ticket",
    "customer",
    "deadline",
    "plan",
    "idea",
    "update",
    "question",
    "answer",
    "problem",
    "works",
    "broken",
    "weird",
    "great",
    "nice",
    "cool",
    "awesome",
    "sorry",
    "hey",
    "hi",
    "hello",
    "bye",
    "lol",
    "yeah",
    "nope",
    "agreed",
    "done",
    "ready",
    "soon",
    "minutes",
    "hours",
    "yesterday",
    "tonight",
    "weekend",
    "office",
    "home",
    "remote",
    "laptop",
    "phone",
    "message",
    "channel",
    "thread",
    "link",
    "file",
    "screen",
    "share",
    "slides",
    "demo",
    "numbers",
    "budget",
    "report",
    "dashboard",
    "alert",
    "outage",
    "incident",
    "rollback",
    "migration",
    "database",
    "cache",
    "queue",
    "index",
    "search",
    "query",
    "benchmark",
    "memory",
    "disk",
    "network",
    "timeout",
];

/// Accented words that really occur in chat.
const ACCENTED: &[&str] = &[
    "café",
    "déjà",
    "naïve",
    "résumé",
    "crème",
    "façade",
    "über",
    "señor",
    "jalapeño",
    "piñata",
    "fiancée",
    "doppelgänger",
    "smörgåsbord",
    "crêpe",
    "entrée",
    "touché",
    "voilà",
    "cliché",
    "mañana",
    "Zürich",
    "München",
    "São",
    "Paulo",
    "Kraków",
    "Malmö",
    "Ångström",
    "élan",
    "soirée",
    "protégé",
];

/// Phrases that recur (what phrase queries mostly look for).
const PHRASES: &[&str] = &[
    "see you tomorrow",
    "pull request",
    "code review",
    "on call",
    "happy birthday",
    "good morning",
    "let me know",
    "sounds good",
    "thank you",
    "merge conflict",
    "release notes",
    "coffee break",
    "stand up",
    "out of office",
    "lunch today",
    "load balancer",
    "hot fix",
    "feature flag",
    "on my way",
    "running late",
    "works for me",
    "ship it",
    "root cause",
    "post mortem",
    "happy friday",
    "end of day",
    "in a meeting",
    "back in five",
    "test suite",
    "build is green",
];

/// Lines of Chinese and Japanese (bigram-indexed by both backends).
const CJK: &[&str] = &[
    "我们明天开会",
    "这个问题已经解决了",
    "东京的天气很好",
    "请看一下这个文档",
    "谢谢你的帮助",
    "今日は会議があります",
    "明日また連絡します",
    "ありがとうございます",
    "新しいバージョンをリリースしました",
    "서버가 다운되었습니다",
    "내일 회의가 있어요",
];

const EMOJI: &[&str] = &["🎉", "👍", "😂", "🚀", "🙏", "🔥", "😅", "✅", "👀", "☕"];

/// Sampling from a Zipf-like distribution over `0..n`: P(k) ∝ 1 / (k + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The words, most frequent first: the common English ones, then made-up ones
/// (3 % with an accent), with the real accented words scattered among them.
fn vocabulary(rng: &mut StdRng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "cr",
        "dr", "fr", "gr", "pl", "pr", "st", "tr", "sh", "ch", "th", "",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
    const CODAS: &[&str] = &["", "", "n", "r", "s", "t", "l", "m", "ck", "nd", "st", "x"];
    const ACCENT: &[(char, char)] =
        &[('e', 'é'), ('e', 'è'), ('u', 'ü'), ('o', 'ö'), ('a', 'à'), ('n', 'ñ'), ('c', 'ç'), ('i', 'ï')];
    let mut seen: HashSet<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
    let mut words: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
    let mut accented = ACCENTED.iter();
    while words.len() < VOCABULARY {
        if words.len().is_multiple_of(150)
            && let Some(w) = accented.next()
        {
            words.push((*w).to_owned());
            continue;
        }
        let syllables = rng.random_range(2..=3);
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
            w.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
            w.push_str(CODAS[rng.random_range(0..CODAS.len())]);
        }
        if rng.random_bool(0.03) {
            let (plain, marked) = ACCENT[rng.random_range(0..ACCENT.len())];
            if let Some(at) = w.find(plain) {
                w.replace_range(at..at + 1, &marked.to_string());
            }
        }
        if w.chars().count() >= 3 && seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Who is in which chat, and everything the generator and the queries draw from.
struct World {
    app: AppId,
    words: Vec<String>,
    word_freq: Zipf,
    chat_freq: Zipf,
    /// Chat index (0-based) by popularity rank: busy chats are not the low numbers.
    chat_by_rank: Vec<usize>,
    users: Vec<UserId>,
    /// For each user, the chats (0-based) they are in.
    user_chats: Vec<Vec<usize>>,
    /// For each chat, its members (indices into `users`).
    members: Vec<Vec<usize>>,
}

impl World {
    fn new(args: &Args, rng: &mut StdRng) -> Result<Self, BoxError> {
        let words = vocabulary(rng);
        let chats = usize::try_from(args.chats)?;
        let users =
            (0..args.users).map(|u| UserId::parse(&format!("user{u}"))).collect::<Result<Vec<_>, _>>()?;
        let mut user_chats = Vec::with_capacity(users.len());
        let mut members = vec![Vec::new(); chats];
        for u in 0..users.len() {
            let mut mine = HashSet::new();
            while mine.len() < CHATS_PER_USER.min(chats) {
                mine.insert(rng.random_range(0..chats));
            }
            let mut mine: Vec<usize> = mine.into_iter().collect();
            mine.sort_unstable();
            for &c in &mine {
                members[c].push(u);
            }
            user_chats.push(mine);
        }
        let mut chat_by_rank: Vec<usize> = (0..chats).collect();
        for i in (1..chat_by_rank.len()).rev() {
            chat_by_rank.swap(i, rng.random_range(0..=i));
        }
        Ok(Self {
            app: AppId::new("bench-app"),
            word_freq: Zipf::new(words.len(), 1.05),
            words,
            chat_freq: Zipf::new(chats, 0.6),
            chat_by_rank,
            users,
            user_chats,
            members,
        })
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        &self.words[self.word_freq.sample(rng)]
    }
}

/// Makes the messages, in order, batch by batch.
struct Generator<'w> {
    world: &'w World,
    rng: StdRng,
    total: u64,
    made: u64,
    /// The last number of each chat.
    seqs: Vec<u64>,
}

impl<'w> Generator<'w> {
    fn new(world: &'w World, seed: u64, total: u64) -> Self {
        Self { world, rng: StdRng::seed_from_u64(seed), total, made: 0, seqs: vec![0; world.members.len()] }
    }

    fn body(&mut self) -> String {
        let rng = &mut self.rng;
        let n = rng.random_range(3..=30);
        let mut words: Vec<String> = (0..n).map(|_| self.world.word(rng).to_owned()).collect();
        if rng.random_bool(0.10) {
            let at = rng.random_range(0..=words.len());
            words.insert(at, PHRASES[rng.random_range(0..PHRASES.len())].to_owned());
        }
        if rng.random_bool(0.05) {
            let path = self.world.word(rng).to_owned();
            let at = rng.random_range(0..=words.len());
            words.insert(at, format!("https://git.example.com/{path}/{}", rng.random_range(1..5000)));
        }
        if rng.random_bool(0.03) {
            words.push(CJK[rng.random_range(0..CJK.len())].to_owned());
        }
        if rng.random_bool(0.15) {
            words.push(EMOJI[rng.random_range(0..EMOJI.len())].to_owned());
        }
        if let Some(first) = words.first_mut()
            && rng.random_bool(0.3)
        {
            let mut chars = first.chars();
            if let Some(c) = chars.next() {
                *first = c.to_uppercase().chain(chars).collect();
            }
        }
        let mut body = words.join(" ");
        match rng.random_range(0..10) {
            0 => body.push('?'),
            1 => body.push('!'),
            2 => body.push('.'),
            _ => {}
        }
        body
    }

    fn next_batch(&mut self, size: usize) -> Option<Vec<SearchDoc>> {
        if self.made >= self.total {
            return None;
        }
        let count = (self.total - self.made).min(size as u64);
        let mut docs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let chat = self.world.chat_by_rank[self.world.chat_freq.sample(&mut self.rng)];
            self.seqs[chat] += 1;
            let seq = self.seqs[chat];
            let members = &self.world.members[chat];
            let sender = if members.is_empty() {
                self.rng.random_range(0..self.world.users.len())
            } else {
                members[self.rng.random_range(0..members.len())]
            };
            let reply_to = (seq > 1 && self.rng.random_bool(0.1))
                .then(|| MessageNumber(seq - self.rng.random_range(1..seq.min(50))));
            let at = START_MS + (i128::from(SPAN_MS) * i128::from(self.made) / i128::from(self.total)) as i64;
            docs.push(SearchDoc {
                app: self.world.app.clone(),
                chat: ChatNumber(chat as u64 + 1),
                seq: MessageNumber(seq),
                sender: Some(self.world.users[sender].clone()),
                body: self.body(),
                reply_to,
                created_at: Timestamp(at + self.rng.random_range(0..1000)),
            });
            self.made += 1;
        }
        Some(docs)
    }
}

// ---------------------------------------------------------------------------
// The queries

const KINDS: [&str; 5] = ["common word", "rare word", "prefix", "two words", "phrase"];

struct BenchQuery {
    kind: &'static str,
    scope: &'static str,
    text: String,
    request: SearchRequest,
}

fn make_query(world: &World, rng: &mut StdRng) -> Result<BenchQuery, BoxError> {
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut text = match kind {
        "common word" => world.words[rng.random_range(0..50)].clone(),
        "rare word" => world.words[rng.random_range(2_000..world.words.len())].clone(),
        "prefix" => loop {
            let w = &world.words[rng.random_range(20..1_000)];
            if w.chars().count() >= 4 && w.chars().all(char::is_alphabetic) {
                break w.chars().take(3).collect();
            }
        },
        "two words" => {
            format!("{} {}", world.words[rng.random_range(0..500)], world.words[rng.random_range(0..500)])
        }
        _ => {
            if rng.random_bool(0.85) {
                format!("\"{}\"", PHRASES[rng.random_range(0..PHRASES.len())])
            } else {
                format!(
                    "\"{} {}\"",
                    world.words[rng.random_range(0..100)],
                    world.words[rng.random_range(0..100)]
                )
            }
        }
    };
    let user = rng.random_range(0..world.users.len());
    let mine = &world.user_chats[user];
    let (scope, chats) = if rng.random_bool(0.5) {
        ("user", mine.clone())
    } else {
        ("chat", vec![mine[rng.random_range(0..mine.len())]])
    };
    if rng.random_bool(0.15) {
        let chat = chats[rng.random_range(0..chats.len())];
        let members = &world.members[chat];
        let from = if members.is_empty() { user } else { members[rng.random_range(0..members.len())] };
        text.push_str(&format!(" from:{}", world.users[from].as_str()));
    }
    if rng.random_bool(0.15) {
        let day = rng.random_range(0..90);
        let at = time::OffsetDateTime::from_unix_timestamp(START_MS / 1000 + day * 86_400)?;
        text.push_str(&format!(" after:{}", at.date()));
    }
    let request = SearchRequest {
        app: world.app.clone(),
        chats: chats.iter().map(|c| ChatNumber(*c as u64 + 1)).collect(),
        query: query::parse(&text)?,
        page: Page { skip: 0, limit: PAGE },
    };
    Ok(BenchQuery { kind, scope, text, request })
}

/// Latencies of a group of queries, in microseconds, and how many hits they had.
#[derive(Default)]
struct Latencies {
    micros: Vec<u64>,
    hits: u64,
    empty: u64,
}

impl Latencies {
    fn record(&mut self, took: Duration, hits: usize) {
        self.micros.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        self.hits += hits as u64;
        self.empty += u64::from(hits == 0);
    }

    fn summary(&self) -> Value {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let q = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1] as f64 / 1000.0
        };
        let n = sorted.len().max(1) as f64;
        json!({
            "count": sorted.len(),
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": q(1.0),
            "mean_ms": sorted.iter().sum::<u64>() as f64 / n / 1000.0,
            "mean_hits": self.hits as f64 / n,
            "empty_fraction": self.empty as f64 / n,
        })
    }
}

// ---------------------------------------------------------------------------
// Measuring

/// Bytes on disk under `dir` (allocated blocks, as `du`).
fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { disk_usage(&entry.path())? } else { meta.blocks() * 512 };
    }
    Ok(total)
}

/// (VmRSS, RssAnon, RssFile, VmHWM) of a process, in bytes.
fn memory(pid: &str) -> Option<Value> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some(json!({
        "rss_bytes": field("VmRSS:")?,
        "rss_anon_bytes": field("RssAnon:"),
        "rss_file_bytes": field("RssFile:"),
        "hwm_bytes": field("VmHWM:"),
    }))
}

/// CPU seconds (user + system, every thread) a process has used so far
/// (`/proc/<pid>/stat`, at the usual 100 ticks per second).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn mib(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// Waits until the tantivy directory stops changing for 3 s (merges done), at most 5 min.
async fn settle(dir: &Path) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let snapshot = |dir: &Path| -> Result<Vec<(String, u64)>, BoxError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir.join("index"))? {
            let entry = entry?;
            files.push((entry.file_name().to_string_lossy().into_owned(), entry.metadata()?.len()));
        }
        files.sort();
        Ok(files)
    };
    let mut last = snapshot(dir)?;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(3) && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = snapshot(dir)?;
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    Ok(started.elapsed())
}

/// A plain client for what the trait does not do (refresh, sizes, force merge, delete).
struct OsAdmin {
    http: reqwest::Client,
    url: String,
    prefix: String,
}

impl OsAdmin {
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, BoxError> {
        let response = request.send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            return Err(format!("opensearch answered {what} with {status}: {body}").into());
        }
        Ok(serde_json::from_str(&body)?)
    }

    async fn refresh(&self) -> Result<(), BoxError> {
        let url = format!("{}/{}-messages/_refresh", self.url, self.prefix);
        self.send(self.http.post(url), "refresh").await.map(|_| ())
    }

    /// (store bytes, documents, segments) of the messages index. OpenSearch
    /// caches the store size for `index.store.stats_refresh_interval` (10 s):
    /// call it that long after the last change.
    async fn size(&self) -> Result<(u64, u64, u64), BoxError> {
        let url = format!("{}/_cat/indices/{}-messages?bytes=b&format=json", self.url, self.prefix);
        let v = self.send(self.http.get(url), "cat indices").await?;
        let row = v.get(0).ok_or("no index row")?;
        let number = |k: &str| -> Result<u64, BoxError> {
            Ok(row.get(k).and_then(Value::as_str).ok_or("no size")?.parse()?)
        };
        let url = format!("{}/{}-messages/_segments", self.url, self.prefix);
        let segments = self.send(self.http.get(url), "segments").await?;
        let count = segments["indices"]
            .as_object()
            .into_iter()
            .flat_map(|i| i.values())
            .flat_map(|i| i["shards"].as_object().into_iter().flat_map(|s| s.values()))
            .flat_map(|copies| copies.as_array().into_iter().flatten())
            .map(|copy| copy["num_search_segments"].as_u64().unwrap_or(0))
            .sum();
        Ok((number("store.size")?, number("docs.count")?, count))
    }

    async fn force_merge(&self) -> Result<(), BoxError> {
        let url = format!("{}/{}-messages/_forcemerge?max_num_segments=1", self.url, self.prefix);
        self.send(self.http.post(url), "force merge").await.map(|_| ())
    }

    /// The OpenSearch process's id, when it is on this machine (`/proc` readable).
    async fn pid(&self) -> Option<String> {
        let url = format!("{}/_nodes/_local/process", self.url);
        let v = self.send(self.http.get(url), "nodes").await.ok()?;
        let node = v["nodes"].as_object()?.values().next()?;
        Some(node["process"]["id"].as_u64()?.to_string())
    }

    async fn delete(&self) -> Result<(), BoxError> {
        let url =
            format!("{}/{}-messages,{}-indexed?ignore_unavailable=true", self.url, self.prefix, self.prefix);
        self.send(self.http.delete(url), "delete indices").await.map(|_| ())
    }
}

// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let rss_at_start = memory("self");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let world = World::new(&args, &mut rng)?;

    // Open the backend.
    let mut temp = None;
    let mut admin = None;
    let index: Box<dyn SearchIndex> = match args.backend {
        Backend::Tantivy => {
            let dir = match &args.dir {
                Some(dir) => dir.clone(),
                None => {
                    let t = tempfile::tempdir()?;
                    let path = t.path().to_owned();
                    temp = Some(t);
                    path
                }
            };
            Box::new(TantivyIndex::open(&dir)?)
        }
        Backend::Opensearch => {
            let url =
                args.url.clone().ok_or("--url (or WEFT_TEST_OPENSEARCH_URL) is needed for opensearch")?;
            let url = url.trim_end_matches('/').to_owned();
            let prefix = args.index_prefix.clone().unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                format!("weft-bench-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
            });
            let index = OpenSearchIndex::new(&OpenSearchConfig {
                url: url.clone(),
                username: None,
                password: None,
                index_prefix: prefix.clone(),
                timeout_ms: 60_000,
            })?;
            let http = reqwest::Client::builder().timeout(Duration::from_secs(900)).build()?;
            admin = Some(OsAdmin { http, url, prefix });
            Box::new(index)
        }
    };
    let dir = args.dir.clone().or_else(|| temp.as_ref().map(|t| t.path().to_owned()));

    let result = run(&args, &world, index.as_ref(), dir.as_deref(), admin.as_ref(), rss_at_start).await;
    if let Some(admin) = &admin
        && !args.keep
        && let Err(e) = admin.delete().await
    {
        eprintln!("could not delete the indices {}-*: {e}", admin.prefix);
    }
    drop(index);
    drop(temp);
    let report = result?;
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

async fn run(
    args: &Args,
    world: &World,
    index: &dyn SearchIndex,
    dir: Option<&Path>,
    admin: Option<&OsAdmin>,
    rss_at_start: Option<Value>,
) -> Result<Value, BoxError> {
    let backend = match args.backend {
        Backend::Tantivy => "tantivy",
        Backend::Opensearch => "opensearch",
    };
    eprintln!(
        "{backend}: indexing {} messages over {} chats, {} users, batches of {}",
        args.messages, args.chats, args.users, args.batch
    );

    // Index.
    let mut generator = Generator::new(world, args.seed.wrapping_add(1), args.messages);
    let mut generating = Duration::ZERO;
    let mut batches = Vec::new();
    let backend_pid = match admin {
        Some(admin) => admin.pid().await,
        None => None,
    };
    let cpu_before = (cpu_seconds("self"), backend_pid.as_deref().and_then(cpu_seconds));
    let started = Instant::now();
    let in_flight = if args.backend == Backend::Tantivy { 1 } else { args.in_flight.max(1) };
    let mut progress = Instant::now();
    let mut indexed = 0u64;
    let mut calls = Box::pin(
        futures::stream::iter(std::iter::from_fn(|| {
            let t = Instant::now();
            let batch = generator.next_batch(args.batch);
            generating += t.elapsed();
            batch
        }))
        .map(|docs| async move {
            let t = Instant::now();
            index.index(&docs).await.map(|()| (docs.len(), t.elapsed()))
        })
        .buffer_unordered(in_flight),
    );
    while let Some((n, took)) = calls.try_next().await? {
        indexed += n as u64;
        batches.push(took);
        if progress.elapsed() > Duration::from_secs(15) {
            progress = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            eprintln!("  {indexed} indexed, {:.0} docs/s so far", indexed as f64 / secs);
        }
    }
    drop(calls);
    let index_secs = started.elapsed().as_secs_f64();
    // CPU of the indexing phase: this process (tantivy's writer and merges, or
    // building the bulk requests) and, on this machine, OpenSearch's.
    let cpu = |before: Option<f64>, pid: Option<&str>| Some(cpu_seconds(pid?)? - before?);
    let own_cpu = cpu(cpu_before.0, Some("self"));
    let backend_cpu = cpu(cpu_before.1, backend_pid.as_deref());
    let total_cpu = own_cpu.unwrap_or(0.0) + backend_cpu.unwrap_or(0.0);
    let docs_per_cpu_sec = (total_cpu > 0.0).then(|| args.messages as f64 / total_cpu);
    let docs_per_sec = args.messages as f64 / index_secs;
    batches.sort_unstable();
    let batch_p50 = batches.get(batches.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let batch_max = batches.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    eprintln!(
        "  indexed in {index_secs:.1} s: {docs_per_sec:.0} docs/s (generation {:.1} s; call p50 {batch_p50:.1} ms, max {batch_max:.1} ms)",
        generating.as_secs_f64()
    );
    eprintln!(
        "  cpu: {:.1} s here{}: {:.0} docs per cpu-second",
        own_cpu.unwrap_or(0.0),
        backend_cpu.map(|c| format!(" + {c:.1} s opensearch")).unwrap_or_default(),
        docs_per_cpu_sec.unwrap_or(0.0)
    );

    // Settle.
    let settle_secs = match (args.backend, dir, admin) {
        (Backend::Tantivy, Some(dir), _) => settle(dir).await?.as_secs_f64(),
        (Backend::Opensearch, _, Some(admin)) => {
            let t = Instant::now();
            admin.refresh().await?;
            t.elapsed().as_secs_f64()
        }
        _ => 0.0,
    };

    let refreshed = Instant::now();

    // Query.
    let mut qrng = StdRng::seed_from_u64(args.seed.wrapping_add(2));
    for _ in 0..args.warmup {
        let q = make_query(world, &mut qrng)?;
        index.search(&q.request).await?;
    }
    let mut all = Latencies::default();
    let mut by_kind: BTreeMap<String, Latencies> = BTreeMap::new();
    let mut slowest: Vec<(u64, String, &'static str)> = Vec::new();
    let querying = Instant::now();
    for _ in 0..args.queries {
        let q = make_query(world, &mut qrng)?;
        let t = Instant::now();
        let hits = index.search(&q.request).await?;
        let took = t.elapsed();
        all.record(took, hits.len());
        by_kind.entry(q.kind.to_owned()).or_default().record(took, hits.len());
        by_kind.entry(format!("scope: {}", q.scope)).or_default().record(took, hits.len());
        let ops = match (q.request.query.from.is_some(), q.request.query.after.is_some()) {
            (false, false) => "operators: none",
            (true, false) => "operators: from",
            (false, true) => "operators: after",
            (true, true) => "operators: from+after",
        };
        by_kind.entry(ops.to_owned()).or_default().record(took, hits.len());
        slowest.push((u64::try_from(took.as_micros()).unwrap_or(u64::MAX), q.text, q.scope));
    }
    let query_secs = querying.elapsed().as_secs_f64();
    slowest.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    slowest.truncate(10);
    let summary = all.summary();

    // Size and memory.
    let rss = memory("self");
    let mut size = json!({});
    let mut backend_rss = Value::Null;
    match (args.backend, dir, admin) {
        (Backend::Tantivy, Some(dir), _) => {
            let bytes = disk_usage(dir)?;
            size = json!({ "bytes": bytes, "bytes_per_message": bytes as f64 / args.messages as f64 });
        }
        (Backend::Opensearch, _, Some(admin)) => {
            if let Some(pid) = admin.pid().await {
                backend_rss = memory(&pid).unwrap_or(Value::Null);
            }
            tokio::time::sleep(STORE_STATS_FRESH.saturating_sub(refreshed.elapsed())).await;
            let (bytes, docs, segments) = admin.size().await?;
            size = json!({
                "bytes": bytes, "docs": docs, "segments": segments,
                "bytes_per_message": bytes as f64 / docs.max(1) as f64,
            });
            if !args.no_force_merge {
                let t = Instant::now();
                admin.force_merge().await?;
                admin.refresh().await?;
                let took = t.elapsed();
                tokio::time::sleep(STORE_STATS_FRESH).await;
                let (bytes, docs, segments) = admin.size().await?;
                size["force_merged"] = json!({
                    "bytes": bytes, "docs": docs, "segments": segments,
                    "bytes_per_message": bytes as f64 / docs.max(1) as f64,
                    "took_s": took.as_secs_f64(),
                });
            }
        }
        _ => {}
    }

    let report = json!({
        "backend": backend,
        "messages": args.messages,
        "chats": args.chats,
        "users": args.users,
        "batch": args.batch,
        "in_flight": in_flight,
        "seed": args.seed,
        "index": {
            "seconds": index_secs,
            "docs_per_sec": docs_per_sec,
            "generation_seconds": generating.as_secs_f64(),
            "call_p50_ms": batch_p50,
            "call_max_ms": batch_max,
            "settle_seconds": settle_secs,
            "cpu_seconds": own_cpu,
            "backend_cpu_seconds": backend_cpu,
            "docs_per_cpu_sec": docs_per_cpu_sec,
        },
        "search": summary,
        "search_seconds": query_secs,
        "search_by": by_kind.iter().map(|(k, v)| (k.clone(), v.summary())).collect::<serde_json::Map<_, _>>(),
        "slowest": slowest.iter().map(|(us, text, scope)| json!({
            "ms": *us as f64 / 1000.0, "query": text, "scope": scope,
        })).collect::<Vec<_>>(),
        "size": size,
        "rss_at_start": rss_at_start,
        "rss": rss,
        "backend_rss": backend_rss,
    });

    // Print.
    eprintln!("  search ({} queries in {query_secs:.1} s, {} warm-up):", args.queries, args.warmup);
    eprintln!(
        "    {:<24} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean hits", "empty"
    );
    let line = |name: &str, s: &Value| {
        eprintln!(
            "    {:<24} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>6.0}%",
            name,
            s["count"],
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p90_ms"].as_f64().unwrap_or(0.0),
            s["p99_ms"].as_f64().unwrap_or(0.0),
            s["max_ms"].as_f64().unwrap_or(0.0),
            s["mean_hits"].as_f64().unwrap_or(0.0),
            s["empty_fraction"].as_f64().unwrap_or(0.0) * 100.0,
        );
    };
    line("all", &report["search"]);
    for (k, v) in report["search_by"].as_object().into_iter().flatten() {
        line(k, v);
    }
    eprintln!("  slowest:");
    for s in report["slowest"].as_array().into_iter().flatten() {
        eprintln!(
            "    {:>8.2} ms  {} [{}]",
            s["ms"].as_f64().unwrap_or(0.0),
            s["query"],
            s["scope"].as_str().unwrap_or("")
        );
    }
    let per_msg = report["size"]["bytes_per_message"].as_f64().unwrap_or(0.0);
    let merged = report["size"]["force_merged"]["bytes_per_message"].as_f64();
    eprintln!(
        "  size: {:.1} MiB, {per_msg:.0} B/message{}",
        mib(&report["size"]["bytes"]),
        merged.map(|m| format!(" ({m:.0} B/message force-merged)")).unwrap_or_default()
    );
    eprintln!(
        "  rss: {:.0} MiB (anon {:.0}, file {:.0}; {:.0} MiB at start){}",
        mib(&report["rss"]["rss_bytes"]),
        mib(&report["rss"]["rss_anon_bytes"]),
        mib(&report["rss"]["rss_file_bytes"]),
        mib(&report["rss_at_start"]["rss_bytes"]),
        if backend_rss.is_null() {
            String::new()
        } else {
            format!("; opensearch process {:.0} MiB", mib(&backend_rss["rss_bytes"]))
        }
    );
    println!(
        "| backend | messages | index docs/s | p50 ms | p90 ms | p99 ms | max ms | bytes/message | RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {backend} | {} | {docs_per_sec:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {per_msg:.0}{} | {:.0}{} |",
        args.messages,
        summary["p50_ms"].as_f64().unwrap_or(0.0),
        summary["p90_ms"].as_f64().unwrap_or(0.0),
        summary["p99_ms"].as_f64().unwrap_or(0.0),
        summary["max_ms"].as_f64().unwrap_or(0.0),
        merged.map(|m| format!(" ({m:.0} merged)")).unwrap_or_default(),
        mib(&report["rss"]["rss_bytes"]),
        if backend_rss.is_null() {
            String::new()
        } else {
            format!(" (+ opensearch {:.0})", mib(&backend_rss["rss_bytes"]))
        },
    );
    Ok(report)
}
