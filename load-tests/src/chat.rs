//! Scenario `chat`: the chat-widget path end to end. One organisation is set up over the REST API
//! (verified owner, allowed origin, publishable key, a synthetic knowledge base of `--documents`
//! product sheets); then `--visitors` visitors at once each create a chat session over HTTP and ask
//! `--questions` questions one after another, over the WebSocket (`--transport ws`, the widget's
//! normal path) or as server-sent events (`--transport http`, its fallback). Half of the questions
//! are answerable from the documents (each asks for one distinct fact), half are not.
//!
//! Per question: time to `ack` (HTTP: response headers), to `message.started`, to the first
//! `token` (which includes the knowledge-base retrieval) and to the assistant `message.done`, and
//! whether the answer was grounded (citations), cited the right document and quoted the fact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::common::{self, dist_ms, now_us, ProcSample, SeqCheck, Server};

/// The page origin the widget runs on; the organisation allows it.
const ORIGIN: &str = "https://load.example";
const PASSWORD: &str = "correct-horse-battery-staple-42";
/// Lets the scenario ask the server's retrieval directly (`/api/v1/internal/ai/rag/search`).
const INTERNAL_KEY: &str = "load-test-internal-key-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket `/api/v1/ws` with the widget credential (the widget's normal path).
    Ws,
    /// `POST /chat/sessions/{id}/messages` read as server-sent events (the widget's fallback).
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OffTopic {
    /// Ordinary questions about other subjects (they share words such as "you" or "the" with the
    /// documents, as real questions do).
    Realistic,
    /// Questions made only of words that appear nowhere in the documents.
    Disjoint,
}

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Concurrent visitors, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "50,200")]
    pub visitors: Vec<usize>,
    /// Questions per visitor, asked one after another (even ones answerable, odd ones not).
    #[arg(long, default_value_t = 6)]
    pub questions: usize,
    /// Knowledge-base documents uploaded before the runs.
    #[arg(long, default_value_t = 200)]
    pub documents: usize,
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    /// Milliseconds between the offline provider's words (the server's default is 15; 0 measures
    /// the server's own cost).
    #[arg(long, default_value_t = 0)]
    pub word_delay_ms: u64,
    /// Visitors start spread evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub ramp_ms: u64,
    /// Pause between an answer and the next question (a visitor reading).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// What the unanswerable questions look like.
    #[arg(long, value_enum, default_value_t = OffTopic::Realistic)]
    pub off_topic: OffTopic,
    /// Seconds one question (or the session set-up) may take before it counts as a timeout.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Loopback source addresses for client sockets.
    #[arg(long, default_value_t = 4)]
    pub sources: usize,
    #[arg(long, default_value = "target/release/rapport")]
    pub server_bin: PathBuf,
    #[arg(long, default_value = "load-tests/results/chat.json")]
    pub out: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// The synthetic knowledge base: product sheets of made-up products, each with distinct facts.

mod corpus {
    pub struct Doc {
        pub title: String,
        pub text: String,
        /// (question, the words of the document that answer it).
        pub facts: Vec<(String, String)>,
    }

    const PREFIXES: [&str; 20] = [
        "Zor", "Quel", "Vant", "Bril", "Lum", "Kest", "Orv", "Tam", "Sil", "Drev", "Mir", "Pax",
        "Fen", "Gald", "Hox", "Ixa", "Jarn", "Kolv", "Nim", "Ost",
    ];
    const MIDDLES: [&str; 8] = ["a", "e", "i", "o", "u", "ae", "io", "y"];
    const SUFFIXES: [&str; 8] = ["brook", "wick", "ra", "lon", "dex", "mont", "vale", "tria"];

    /// (singular, description).
    const CATEGORIES: [(&str, &str); 20] = [
        ("kettle", "It boils a full litre of water in under four minutes and switches itself off when the water is ready."),
        ("backpack", "Its main compartment holds 28 litres, and a padded sleeve keeps a laptop safe on the daily commute."),
        ("desk lamp", "Its warm light can be dimmed in five steps, and the arm folds flat when it is not in use."),
        ("coffee grinder", "Its conical burrs offer forty grind settings, from fine espresso to coarse cold brew."),
        ("tent", "It sleeps two people, pitches in about six minutes and packs down to the size of a loaf of bread."),
        ("yoga mat", "It is six millimetres thick, grips well on wooden floors and rolls up with a cotton strap."),
        ("headphones", "They cancel background noise, last thirty hours on one charge and fold into a small case."),
        ("blender", "Its 1200-watt motor crushes ice in seconds, and the jug is safe in the dishwasher."),
        ("rain jacket", "Its taped seams keep out heavy showers, and the hood adjusts with one hand."),
        ("water bottle", "Its double wall keeps drinks cold for a whole day and hot for twelve hours."),
        ("office chair", "Its mesh back breathes on warm days, and the lumbar support moves up and down."),
        ("garden hose", "It stretches to fifteen metres, shrinks back after use and never kinks."),
        ("phone case", "It survives drops from two metres and leaves every button easy to press."),
        ("wool blanket", "It is woven from merino wool, feels soft on bare skin and keeps its shape after washing."),
        ("hiking boots", "Their grippy soles hold on wet rock, and the waterproof lining keeps feet dry."),
        ("air purifier", "Its filter catches pollen and fine dust, and it runs almost silently at night."),
        ("electric toothbrush", "It offers three cleaning modes, and a two-minute timer pauses every thirty seconds."),
        ("frying pan", "Its ceramic coating needs little oil, and it works on gas, electric and induction hobs."),
        ("thermostat", "It learns your weekly routine and lowers the heating when nobody is at home."),
        ("suitcase", "Its four spinner wheels glide quietly, and the shell is made from recycled polycarbonate."),
    ];
    const COLLECTIONS: [&str; 6] = ["spring", "autumn", "winter", "harbour", "studio", "classic"];
    const COLOURS: [&str; 10] = [
        "slate grey",
        "forest green",
        "sand beige",
        "ocean blue",
        "brick red",
        "charcoal black",
        "mustard yellow",
        "lavender",
        "coral pink",
        "ivory white",
    ];
    const TOWNS: [&str; 16] = [
        "Tamsvik",
        "Orlenburg",
        "Casterwell",
        "Brindlemoor",
        "Vellacourt",
        "Oskarfjell",
        "Dunmarrow",
        "Elderhaven",
        "Quillonby",
        "Rosswater",
        "Larkspur Bay",
        "Hestmark",
        "Fennick Falls",
        "Marrowgate",
        "Solvenna",
        "Wrenfield",
    ];

    /// Unique for the first 1,280 products.
    fn name(i: usize) -> String {
        let (p, m, k) = (i % 20, (i / 20) % 8, i / 160);
        format!(
            "{}{}{}",
            PREFIXES[p],
            MIDDLES[m],
            SUFFIXES[(p + m + k) % SUFFIXES.len()]
        )
    }

    pub fn document(i: usize) -> Doc {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0000 + i as u64);
        let mut name = name(i);
        if i >= 1280 {
            name = format!("{name}{}", i / 1280 + 1);
        }
        let (category, description) = CATEGORIES[(i * 7 + i / 20) % CATEGORIES.len()];
        let collection = COLLECTIONS[rng.gen_range(0..COLLECTIONS.len())];
        let weight = rng.gen_range(120..4800);
        let price = format!("{}.{:02}", rng.gen_range(19..499), rng.gen_range(0..100));
        let years = rng.gen_range(1..8);
        let first = rng.gen_range(0..COLOURS.len());
        let second = (first + rng.gen_range(1..COLOURS.len())) % COLOURS.len();
        let (c1, c2) = (COLOURS[first], COLOURS[second]);
        let town = TOWNS[rng.gen_range(0..TOWNS.len())];
        let team = rng.gen_range(4..40);
        let letters: String = (0..2)
            .map(|_| char::from(b'A' + rng.gen_range(0..26u8)))
            .collect();
        let code = format!("{letters}-{}", rng.gen_range(1000..10000));
        let days = [14, 30, 60][rng.gen_range(0..3)];
        let text = format!(
            "The {name} {category} is part of our {collection} collection. {description} It weighs {weight} grams.\n\n\
             The {name} {category} costs {price} euros. Every {name} {category} comes with a {years}-year warranty \
             that covers manufacturing faults. The {name} comes in {c1} and {c2}.\n\n\
             Each {name} is assembled in {town} by a small team of {team} people. The model code of the {name} \
             is {code}; you will find it on the label underneath.\n\n\
             If you order the {name} before two o'clock on a working day, we ship it the same day. You can send \
             it back within {days} days when it is unused and in its box. For spare parts, contact our service \
             desk and mention the model code."
        );
        let facts = vec![
            (
                format!("How much does the {name} {category} cost?"),
                format!("{name} {category} costs {price} euros"),
            ),
            (
                format!("How long is the warranty on the {name} {category}?"),
                format!("{name} {category} comes with a {years}-year warranty"),
            ),
            (
                format!("Where is the {name} assembled?"),
                format!("{name} is assembled in {town}"),
            ),
            (
                format!("What is the model code of the {name}?"),
                format!("model code of the {name} is {code}"),
            ),
            (
                format!("Which colours does the {name} come in?"),
                format!("{name} comes in {c1} and {c2}"),
            ),
        ];
        Doc {
            title: format!("{name} {category}"),
            text,
            facts,
        }
    }

    /// Ordinary questions on other subjects.
    pub const REALISTIC_OFF_TOPIC: [&str; 12] = [
        "Do you repair bicycle tyres?",
        "Can I book a table for four on Friday evening?",
        "What time does the swimming pool close on public holidays?",
        "Do you offer piano lessons for children?",
        "Is there a vegan option on the lunch menu?",
        "How do I renew my fishing licence?",
        "What is the weather forecast for tomorrow?",
        "Can you recommend a good dentist nearby?",
        "Do you sell concert tickets for the festival?",
        "Who won the football match last night?",
        "How much is a haircut for a child?",
        "Are dogs allowed in the reading room?",
    ];

    /// Questions whose words appear in no document.
    pub const DISJOINT_OFF_TOPIC: [&str; 12] = [
        "Bicycle tyre puncture?",
        "Table reservation Friday?",
        "Swimming pool timetable?",
        "Piano lessons?",
        "Vegan lunch menu?",
        "Fishing licence renewal?",
        "Weather forecast tomorrow?",
        "Dentist nearby?",
        "Concert tickets?",
        "Football match results?",
        "Haircut appointments?",
        "Dogs allowed?",
    ];

    /// Lower-case words of a text, as the full-text index splits them (before stemming).
    pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
    }
}

/// One question a visitor will ask.
#[derive(Clone)]
struct Question {
    text: String,
    on_topic: bool,
    /// Answerable questions: the document's title and the words that answer it.
    title: Option<String>,
    fact: Option<String>,
}

fn plan(
    visitor: usize,
    level: usize,
    questions: usize,
    docs: &[corpus::Doc],
    off: &[&str],
) -> Vec<Question> {
    let mut rng = StdRng::seed_from_u64(((level as u64) << 32) ^ visitor as u64);
    (0..questions)
        .map(|n| {
            if n % 2 == 0 && !docs.is_empty() {
                let doc = &docs[rng.gen_range(0..docs.len())];
                let (text, fact) = &doc.facts[rng.gen_range(0..doc.facts.len())];
                Question {
                    text: text.clone(),
                    on_topic: true,
                    title: Some(doc.title.clone()),
                    fact: Some(fact.clone()),
                }
            } else {
                Question {
                    text: off[rng.gen_range(0..off.len())].to_string(),
                    on_topic: false,
                    title: None,
                    fact: None,
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Measurements.

#[derive(Default)]
struct Samples {
    create_us: Vec<u64>,
    connect_us: Vec<u64>,
    attach_us: Vec<u64>,
    greeting_us: Vec<u64>,
    ack_us: Vec<u64>,
    started_us: Vec<u64>,
    ttft_us: Vec<u64>,
    done_us: Vec<u64>,
    started_to_token_us: Vec<u64>,
    ttft_on_us: Vec<u64>,
    ttft_off_us: Vec<u64>,
    done_on_us: Vec<u64>,
    done_off_us: Vec<u64>,
    asked: u64,
    answers: u64,
    on_asked: u64,
    on_answered: u64,
    on_grounded: u64,
    on_right_doc: u64,
    on_fact: u64,
    off_asked: u64,
    off_answered: u64,
    off_fallback: u64,
    frames: u64,
    gaps: u64,
    duplicates: u64,
    content_mismatches: u64,
    cancelled: u64,
    visitors_done: u64,
    visitors_failed: u64,
    errors: BTreeMap<String, u64>,
    first_errors: Vec<String>,
}

impl Samples {
    fn error(&mut self, code: &str, detail: impl std::fmt::Display) {
        *self.errors.entry(code.to_string()).or_default() += 1;
        if self.first_errors.len() < 10 {
            self.first_errors.push(format!("{code}: {detail}"));
        }
    }

    fn merge(&mut self, other: Samples) {
        for (mine, theirs) in [
            (&mut self.create_us, other.create_us),
            (&mut self.connect_us, other.connect_us),
            (&mut self.attach_us, other.attach_us),
            (&mut self.greeting_us, other.greeting_us),
            (&mut self.ack_us, other.ack_us),
            (&mut self.started_us, other.started_us),
            (&mut self.ttft_us, other.ttft_us),
            (&mut self.done_us, other.done_us),
            (&mut self.started_to_token_us, other.started_to_token_us),
            (&mut self.ttft_on_us, other.ttft_on_us),
            (&mut self.ttft_off_us, other.ttft_off_us),
            (&mut self.done_on_us, other.done_on_us),
            (&mut self.done_off_us, other.done_off_us),
        ] {
            mine.extend(theirs);
        }
        self.asked += other.asked;
        self.answers += other.answers;
        self.on_asked += other.on_asked;
        self.on_answered += other.on_answered;
        self.on_grounded += other.on_grounded;
        self.on_right_doc += other.on_right_doc;
        self.on_fact += other.on_fact;
        self.off_asked += other.off_asked;
        self.off_answered += other.off_answered;
        self.off_fallback += other.off_fallback;
        self.frames += other.frames;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.content_mismatches += other.content_mismatches;
        self.cancelled += other.cancelled;
        self.visitors_done += other.visitors_done;
        self.visitors_failed += other.visitors_failed;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for e in other.first_errors {
            if self.first_errors.len() < 10 {
                self.first_errors.push(e);
            }
        }
    }
}

/// A failure with the code it is counted under.
fn fail(code: &str, detail: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{code}|{detail}")
}

/// The code of an error from [`fail`], or a class for transport errors.
fn code_of(error: &anyhow::Error) -> (String, String) {
    let text = error.to_string();
    if let Some((code, detail)) = text.split_once('|') {
        return (code.to_string(), detail.to_string());
    }
    let code = if text.contains("no frame within") || text.contains("timed out") {
        "client_timeout"
    } else if text.contains("closed") {
        "connection_closed"
    } else {
        "client_error"
    };
    (code.to_string(), text)
}

/// One question's answer as it arrives, over either transport.
struct Ask<'a> {
    question: &'a Question,
    client_message_id: String,
    sent: u64,
    ack: Option<u64>,
    started: Option<u64>,
    first_token: Option<u64>,
    message_id: Option<String>,
    text: String,
}

impl<'a> Ask<'a> {
    fn new(question: &'a Question, client_message_id: String) -> Self {
        Self {
            question,
            client_message_id,
            sent: now_us(),
            ack: None,
            started: None,
            first_token: None,
            message_id: None,
            text: String::new(),
        }
    }

    /// A `message.started` frame: notes it when it opens this question's answer.
    fn started(&mut self, frame: &Value, at: u64) {
        if self.message_id.is_some() || frame["in_reply_to"] != self.client_message_id.as_str() {
            return;
        }
        self.message_id = frame["message_id"].as_str().map(str::to_owned);
        self.started = Some(at);
    }

    fn mine(&self, frame: &Value) -> bool {
        self.message_id.is_some() && frame["message_id"].as_str() == self.message_id.as_deref()
    }

    fn token(&mut self, frame: &Value, at: u64) {
        if !self.mine(frame) {
            return;
        }
        if self.first_token.is_none() {
            self.first_token = Some(at);
        }
        self.text
            .push_str(frame["delta"].as_str().unwrap_or_default());
    }

    /// The assistant `message.done` of this answer: records everything.
    fn done(&self, frame: &Value, at: u64, s: &mut Samples) {
        let q = self.question;
        let since = |t: Option<u64>| t.map(|t| t.saturating_sub(self.sent));
        if let Some(ack) = since(self.ack) {
            s.ack_us.push(ack);
        }
        if let Some(started) = since(self.started) {
            s.started_us.push(started);
        }
        if let Some(ttft) = since(self.first_token) {
            s.ttft_us.push(ttft);
            if q.on_topic {
                s.ttft_on_us.push(ttft);
            } else {
                s.ttft_off_us.push(ttft);
            }
            if let (Some(started), Some(token)) = (self.started, self.first_token) {
                s.started_to_token_us.push(token.saturating_sub(started));
            }
        }
        let done = at.saturating_sub(self.sent);
        s.done_us.push(done);
        if q.on_topic {
            s.done_on_us.push(done);
        } else {
            s.done_off_us.push(done);
        }
        s.answers += 1;
        let content = frame["content"].as_str().unwrap_or_default();
        if content != self.text {
            s.content_mismatches += 1;
        }
        if frame["cancelled"] == true {
            s.cancelled += 1;
        }
        let citations = frame["citations"].as_array().cloned().unwrap_or_default();
        if q.on_topic {
            s.on_answered += 1;
            if !citations.is_empty() {
                s.on_grounded += 1;
            }
            if citations
                .iter()
                .any(|c| c["title"].as_str() == q.title.as_deref())
            {
                s.on_right_doc += 1;
            }
            if q.fact.as_deref().is_some_and(|f| content.contains(f)) {
                s.on_fact += 1;
            }
        } else {
            s.off_answered += 1;
            if citations.is_empty() {
                s.off_fallback += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up over the REST API.

struct Org {
    id: String,
    key: String,
    chunks: i64,
    upload_s: f64,
    ingest_s: f64,
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
    expect: u16,
) -> Result<Value> {
    let mut request = http.request(method.clone(), &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    if status != expect {
        bail!("{method} {url}: expected {expect}, got {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The verification token mailed to `email`, from the `.eml` files beside the database.
async fn mailed_token(server: &Server, email: &str) -> Result<String> {
    let mailbox = server.dir.join("mailbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(entries) = std::fs::read_dir(&mailbox) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("eml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !text.contains(email) {
                    continue;
                }
                if let Some(rest) = text.split("Verification token: ").nth(1) {
                    let token: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if !token.is_empty() {
                        return Ok(token);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no verification mail for {email} in {}", mailbox.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_up(server: &Server, docs: &[corpus::Doc]) -> Result<Org> {
    use reqwest::Method;
    let http = reqwest::Client::new();
    let api = |path: &str| server.http(&format!("/api/v1{path}"));
    let email = format!("chat-owner-{}@example.com", now_us());
    let registered = call(
        &http,
        Method::POST,
        api("/auth/register"),
        None,
        Some(json!({"email": email, "password": PASSWORD, "org_name": "Load Test Outfitters"})),
        201,
    )
    .await?;
    let org_id = registered["user"]["org"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no user.org.id in {registered}"))?
        .to_string();
    let token = mailed_token(server, &email).await?;
    call(
        &http,
        Method::GET,
        api(&format!("/auth/verify/{token}")),
        None,
        None,
        200,
    )
    .await?;
    // A token issued after verification.
    let login = call(
        &http,
        Method::POST,
        api("/auth/login"),
        None,
        Some(json!({"email": email, "password": PASSWORD})),
        200,
    )
    .await?;
    let access = login["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow!("no accessToken in {login}"))?
        .to_string();
    call(
        &http,
        Method::PUT,
        api(&format!("/orgs/{org_id}/config")),
        Some(&access),
        Some(json!({
            "persona": "Outfitters helper",
            "greeting": "Hello! Ask me anything about our products.",
            "allowed_origins": [ORIGIN],
        })),
        200,
    )
    .await?;
    let credential = call(
        &http,
        Method::POST,
        api(&format!("/orgs/{org_id}/credentials")),
        Some(&access),
        Some(json!({"kind": "publishable"})),
        201,
    )
    .await?;
    let key = credential["key"]
        .as_str()
        .filter(|k| k.starts_with("pk_"))
        .ok_or_else(|| anyhow!("no publishable key in {credential}"))?
        .to_string();

    let started = Instant::now();
    let mut ids = Vec::with_capacity(docs.len());
    let mut uploads = futures::stream::iter(docs.iter())
        .map(|doc| {
            let http = http.clone();
            let url = api(&format!("/orgs/{org_id}/knowledge-bases"));
            let access = access.clone();
            async move {
                call(
                    &http,
                    Method::POST,
                    url,
                    Some(&access),
                    Some(json!({"title": doc.title, "text": doc.text})),
                    201,
                )
                .await
            }
        })
        .buffer_unordered(8);
    while let Some(created) = uploads.next().await {
        let created = created?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no id in {created}"))?;
        ids.push(id.to_string());
    }
    drop(uploads);
    let upload_s = started.elapsed().as_secs_f64();
    let mut chunks = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pending = ids;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let entry = call(
                &http,
                Method::GET,
                api(&format!("/orgs/{org_id}/knowledge-bases/{id}")),
                Some(&access),
                None,
                200,
            )
            .await?;
            match entry["status"].as_str() {
                Some("ready") => chunks += entry["chunk_count"].as_i64().unwrap_or(0),
                Some("failed") => bail!("document ingestion failed: {entry}"),
                _ => still.push(id),
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{} documents not ready after 600 s", pending.len());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Org {
        id: org_id,
        key,
        chunks,
        upload_s,
        ingest_s: started.elapsed().as_secs_f64(),
    })
}

/// What the server's hybrid search finds for each unanswerable question: an answer is grounded
/// when a passage is relevant (cosine similarity at least `rag.min_score`, or first in the
/// full-text ranking), so this shows why a question did or did not get the fallback.
async fn diagnose(server: &Server, org: &Org, questions: &[&str]) -> Result<Vec<Value>> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for question in questions {
        let response = http
            .post(server.http("/api/v1/internal/ai/rag/search"))
            .header("x-internal-key", INTERNAL_KEY)
            .json(&json!({"org_id": org.id, "query": question, "top_k": 5}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            bail!("rag search: {status} {body}");
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        let max_similarity = results
            .iter()
            .filter_map(|r| r["similarity"].as_f64())
            .fold(None, |best: Option<f64>, x| {
                Some(best.map_or(x, |b| b.max(x)))
            });
        let text_first = results.iter().find(|r| r["text_rank"] == 1);
        out.push(json!({
            "question": question,
            "results": results.len(),
            "max_similarity": max_similarity.map(common::round3),
            "text_rank_1_title": text_first.map(|r| r["kb_title"].clone()),
            "text_rank_1_similarity": text_first.and_then(|r| r["similarity"].as_f64()).map(common::round3),
        }));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Visitors.

struct Ctx {
    addr: std::net::SocketAddr,
    base: String,
    key: String,
    wait: Duration,
    think: Duration,
    /// One HTTP client per source address.
    http: Vec<reqwest::Client>,
    sources: usize,
}

/// `POST /chat/sessions` → (session_id, session_token).
async fn create_session(
    ctx: &Ctx,
    http: &reqwest::Client,
    s: &mut Samples,
) -> Result<(String, String)> {
    let t0 = now_us();
    let response = http
        .post(format!("{}/api/v1/chat/sessions", ctx.base))
        .header("x-api-key", &ctx.key)
        .header("origin", ORIGIN)
        .json(&json!({}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 201 {
        return Err(fail(
            &format!("http_{status}_{}", body["code"].as_str().unwrap_or("")),
            format!("create session: {body}"),
        ));
    }
    s.create_us.push(now_us() - t0);
    let id = body["session_id"].as_str().unwrap_or_default().to_string();
    let token = body["session_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || token.is_empty() {
        return Err(fail("bad_response", format!("create session: {body}")));
    }
    Ok((id, token))
}

/// Counts one numbered frame in `seq` order.
fn see(seq: &mut SeqCheck, frame: &Value, s: &mut Samples) {
    if frame.get("seq").is_some() {
        s.frames += 1;
        seq.see(frame);
    }
}

async fn ws_visitor(ctx: &Ctx, index: usize, plan: &[Question], s: &mut Samples) -> Result<()> {
    let http = &ctx.http[index % ctx.http.len()];
    let (session_id, session_token) = create_session(ctx, http, s).await?;
    let source = common::source_ip(index, ctx.sources);
    let t0 = now_us();
    let protocols = format!("rapport.v1, rapport.key.{}.{session_token}", ctx.key);
    let mut ws = common::connect_with(ctx.addr, source, &protocols, Some(ORIGIN)).await?;
    let frame = common::next_frame(&mut ws, ctx.wait).await?;
    if frame["type"] != "auth.ok" {
        return Err(fail(
            frame["code"].as_str().unwrap_or("no_auth_ok"),
            format!("expected auth.ok, got {frame}"),
        ));
    }
    s.connect_us.push(now_us() - t0);
    let mut seq = SeqCheck::default();
    let result = ws_conversation(ctx, &mut ws, &mut seq, &session_id, plan, s).await;
    s.gaps += seq.gaps;
    s.duplicates += seq.duplicates;
    let _ = futures::SinkExt::close(&mut ws).await;
    result
}

async fn ws_conversation(
    ctx: &Ctx,
    ws: &mut common::Ws,
    seq: &mut SeqCheck,
    session_id: &str,
    plan: &[Question],
    s: &mut Samples,
) -> Result<()> {
    let t0 = now_us();
    common::send(
        ws,
        json!({"type": "session.resume", "session_id": session_id, "last_seq": 0}),
    )
    .await?;
    loop {
        let (frame, at) = common::next_frame_at(ws, ctx.wait).await?;
        see(seq, &frame, s);
        match frame["type"].as_str().unwrap_or_default() {
            "session.attached" => s.attach_us.push(at - t0),
            "message.done" if frame["role"] == "assistant" => {
                s.greeting_us.push(at - t0);
                break;
            }
            "error" => {
                return Err(fail(
                    frame["code"].as_str().unwrap_or("error"),
                    format!("resume: {frame}"),
                ))
            }
            _ => {}
        }
    }
    for (n, question) in plan.iter().enumerate() {
        if n > 0 && !ctx.think.is_zero() {
            tokio::time::sleep(ctx.think).await;
        }
        s.asked += 1;
        if question.on_topic {
            s.on_asked += 1;
        } else {
            s.off_asked += 1;
        }
        let client_message_id = format!("q{n}");
        let mut ask = Ask::new(question, client_message_id.clone());
        common::send(
            ws,
            json!({"type": "message", "content": question.text, "client_message_id": client_message_id, "ref": client_message_id}),
        )
        .await?;
        loop {
            let (frame, at) = common::next_frame_at(ws, ctx.wait).await?;
            see(seq, &frame, s);
            match frame["type"].as_str().unwrap_or_default() {
                "ack" if frame["client_message_id"] == client_message_id.as_str() => {
                    ask.ack = Some(at);
                }
                "message.started" => ask.started(&frame, at),
                "token" => ask.token(&frame, at),
                "message.done" if frame["role"] == "assistant" && ask.mine(&frame) => {
                    ask.done(&frame, at, s);
                    break;
                }
                "error" => {
                    let code = frame["code"].as_str().unwrap_or("error");
                    s.error(code, &frame);
                    // Refused (it carries our ref): this question gets no answer.
                    if frame["ref"] == client_message_id.as_str() {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

async fn http_visitor(ctx: &Ctx, index: usize, plan: &[Question], s: &mut Samples) -> Result<()> {
    let http = &ctx.http[index % ctx.http.len()];
    let (session_id, session_token) = create_session(ctx, http, s).await?;
    let url = format!("{}/api/v1/chat/sessions/{session_id}/messages", ctx.base);
    // `seq` of the previous answer's `message.done`: the next answer starts two later (the
    // visitor's own message is numbered but not sent as an event).
    let mut previous_done: Option<i64> = None;
    for (n, question) in plan.iter().enumerate() {
        if n > 0 && !ctx.think.is_zero() {
            tokio::time::sleep(ctx.think).await;
        }
        s.asked += 1;
        if question.on_topic {
            s.on_asked += 1;
        } else {
            s.off_asked += 1;
        }
        let client_message_id = format!("q{n}");
        let mut ask = Ask::new(question, client_message_id.clone());
        let response = http
            .post(&url)
            .header("x-api-key", &ctx.key)
            .header("x-session-token", &session_token)
            .header("origin", ORIGIN)
            .header("accept", "text/event-stream")
            .json(&json!({"content": question.text, "client_message_id": client_message_id}))
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 200 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            s.error(
                &format!("http_{status}_{}", body["code"].as_str().unwrap_or("")),
                &body,
            );
            continue;
        }
        ask.ack = Some(now_us());
        let mut bytes = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut seq: Option<i64> = None;
        let mut finished = false;
        'read: while let Some(piece) = bytes.next().await {
            let piece = piece?;
            let at = now_us();
            buffer.extend_from_slice(&piece);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let mut kind = "message";
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(k) = line.strip_prefix("event:") {
                        kind = k.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let frame: Value = serde_json::from_str(&data)?;
                if let Some(n) = frame["seq"].as_i64() {
                    s.frames += 1;
                    let expected = match seq {
                        Some(last) => Some(last + 1),
                        None => previous_done.map(|d| d + 2),
                    };
                    match expected {
                        Some(e) if n < e => s.duplicates += 1,
                        Some(e) if n > e => s.gaps += 1,
                        _ => {}
                    }
                    seq = Some(n);
                }
                match kind {
                    "started" => ask.started(&frame, at),
                    "token" => ask.token(&frame, at),
                    "done" => {
                        ask.done(&frame, at, s);
                        previous_done = seq;
                        finished = true;
                        break 'read;
                    }
                    "error" => {
                        s.error(frame["code"].as_str().unwrap_or("error"), &frame);
                        finished = true;
                        break 'read;
                    }
                    _ => {}
                }
            }
        }
        if !finished {
            return Err(fail("stream_ended", "the event stream ended before `done`"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Runs.

/// The server's "slow statement" warnings so far (sqlx logs every statement over 1 s): the
/// statement's summary and how long it took.
fn slow_statements(server: &Server) -> Vec<(String, f64)> {
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|v| {
            if v.get("fields").is_some() {
                v["fields"].clone()
            } else {
                v
            }
        })
        .filter(|f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("slow statement"))
        })
        .map(|f| {
            (
                f["summary"].as_str().unwrap_or_default().to_string(),
                f["elapsed_secs"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

fn slow_summary(slow: &[(String, f64)]) -> Value {
    let mut by_statement: BTreeMap<&str, u64> = BTreeMap::new();
    for (summary, _) in slow {
        *by_statement.entry(summary.as_str()).or_default() += 1;
    }
    let max = slow.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    json!({"count": slow.len(), "max_s": common::round3(max), "by_statement": by_statement})
}

#[derive(Debug, Serialize)]
struct Latencies {
    session_create: common::Dist,
    ws_connect_to_auth_ok: common::Dist,
    resume_to_attached: common::Dist,
    resume_to_greeting: common::Dist,
    ack: common::Dist,
    message_started: common::Dist,
    first_token: common::Dist,
    done: common::Dist,
    started_to_first_token: common::Dist,
    first_token_answerable: common::Dist,
    first_token_unanswerable: common::Dist,
    done_answerable: common::Dist,
    done_unanswerable: common::Dist,
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        common::round3(part as f64 / whole as f64)
    }
}

pub async fn run(args: ChatArgs) -> Result<()> {
    let docs: Vec<corpus::Doc> = (0..args.documents).map(corpus::document).collect();
    let off: &[&str] = match args.off_topic {
        OffTopic::Realistic => &corpus::REALISTIC_OFF_TOPIC,
        OffTopic::Disjoint => &corpus::DISJOINT_OFF_TOPIC,
    };
    let vocabulary: BTreeSet<String> = docs
        .iter()
        .flat_map(|d| corpus::words(&d.text).chain(corpus::words(&d.title)))
        .collect();
    let sharing: Vec<&str> = off
        .iter()
        .copied()
        .filter(|q| corpus::words(q).any(|w| vocabulary.contains(&w)))
        .collect();
    let limits = [
        "auth_ip",
        "account",
        "org",
        "api_key",
        "chat_session",
        "visitor_ip",
    ]
    .map(|g| format!("{g}=1000000"))
    .join(",");
    let server = Server::start(
        &args.server_bin,
        &[
            ("RAPPORT_RATE_LIMITS", limits),
            (
                "RAPPORT_OFFLINE_WORD_DELAY_MS",
                args.word_delay_ms.to_string(),
            ),
            ("RAPPORT_INTERNAL_KEY", INTERNAL_KEY.to_string()),
        ],
    )
    .await?;
    println!("chat: server pid {} at {}", server.pid, server.addr);
    let result = measure(&args, &server, &docs, off, &sharing).await;
    server.stop().await;
    result
}

async fn measure(
    args: &ChatArgs,
    server: &Server,
    docs: &[corpus::Doc],
    off: &[&str],
    sharing: &[&str],
) -> Result<()> {
    let setup_cpu0 = ProcSample::of(server.pid);
    let org = set_up(server, docs).await?;
    let setup_cost = ProcSample::of(server.pid);
    println!(
        "chat: {} documents ({} chunks) uploaded in {:.1} s, all ready after {:.1} s (server {:.1} CPU s); \
         {} of {} unanswerable questions share a word with the documents",
        docs.len(),
        org.chunks,
        org.upload_s,
        org.ingest_s,
        setup_cost.cpu_s - setup_cpu0.cpu_s,
        sharing.len(),
        off.len(),
    );
    let diagnosis = diagnose(server, &org, off).await?;
    let relevant = diagnosis
        .iter()
        .filter(|d| {
            d["text_rank_1_title"].is_string()
                || d["max_similarity"].as_f64().is_some_and(|s| s >= 0.2)
        })
        .count();
    println!(
        "chat: retrieval finds a relevant passage (first in full text, or similarity >= 0.2) for {relevant} of {} unanswerable questions",
        off.len()
    );
    let mut http = Vec::new();
    for i in 0..args.sources.max(1) {
        http.push(
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .local_address(common::source_ip(i, args.sources))
                .pool_max_idle_per_host(usize::MAX)
                .build()?,
        );
    }
    let ctx = Arc::new(Ctx {
        addr: server.addr,
        base: server.http(""),
        key: org.key.clone(),
        wait: Duration::from_secs(args.timeout_s),
        think: Duration::from_millis(args.think_ms),
        http,
        sources: args.sources.max(1),
    });
    let mut levels = Vec::new();
    for (level, &visitors) in args.visitors.iter().enumerate() {
        levels.push(run_level(args, server, &ctx, docs, off, level, visitors).await?);
    }
    let result = json!({
        "scenario": "chat",
        "transport": args.transport,
        "machine": common::machine(),
        "documents": docs.len(),
        "chunks": org.chunks,
        "setup": {
            "upload_s": common::round3(org.upload_s),
            "all_ready_s": common::round3(org.ingest_s),
            "server_cpu_s": common::round3(setup_cost.cpu_s - setup_cpu0.cpu_s),
        },
        "questions_per_visitor": args.questions,
        "offline_word_delay_ms": args.word_delay_ms,
        "ramp_ms": args.ramp_ms,
        "think_ms": args.think_ms,
        "off_topic": args.off_topic,
        "off_topic_questions": off,
        "off_topic_questions_sharing_a_word_with_documents": sharing,
        "off_topic_retrieval": diagnosis,
        "sources": args.sources,
        "levels": levels,
    });
    common::write_result(&args.out, &result)?;
    Ok(())
}

async fn run_level(
    args: &ChatArgs,
    server: &Server,
    ctx: &Arc<Ctx>,
    docs: &[corpus::Doc],
    off: &[&str],
    level: usize,
    visitors: usize,
) -> Result<Value> {
    let plans: Vec<Vec<Question>> = (0..visitors)
        .map(|i| plan(i, level, args.questions, docs, off))
        .collect();
    let rss_before = common::rss_kib(server.pid).unwrap_or(0);
    let slow_before = slow_statements(server).len();
    let me0 = ProcSample::me();
    let server0 = ProcSample::of(server.pid);
    let busy0 = common::machine_busy_s();
    let started = Instant::now();
    let ramp = Duration::from_millis(args.ramp_ms);
    let limit = ctx.wait * (args.questions as u32 + 2);
    let mut tasks = Vec::with_capacity(visitors);
    for (i, plan) in plans.into_iter().enumerate() {
        let ctx = ctx.clone();
        let offset = ramp * i as u32 / visitors.max(1) as u32;
        let transport = args.transport;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut s = Samples::default();
            let visit = async {
                match transport {
                    Transport::Ws => ws_visitor(&ctx, i, &plan, &mut s).await,
                    Transport::Http => http_visitor(&ctx, i, &plan, &mut s).await,
                }
            };
            let outcome = tokio::time::timeout(limit, visit).await;
            match outcome {
                Ok(Ok(())) => s.visitors_done += 1,
                Ok(Err(error)) => {
                    let (code, detail) = code_of(&error);
                    s.error(&code, detail);
                    s.visitors_failed += 1;
                }
                Err(_) => {
                    s.error("client_timeout", "visitor did not finish in time");
                    s.visitors_failed += 1;
                }
            }
            s
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let wall = started.elapsed();
    let generator = common::cost(std::process::id(), me0, wall);
    let server_cost = common::cost(server.pid, server0, wall);
    let machine_load = common::machine_load(busy0, wall, &[&server_cost, &generator]);
    let rss_after = common::rss_kib(server.pid).unwrap_or(0);
    let slow: Vec<(String, f64)> = slow_statements(server)
        .into_iter()
        .skip(slow_before)
        .collect();
    let secs = wall.as_secs_f64();
    let latency = Latencies {
        session_create: dist_ms(&mut all.create_us),
        ws_connect_to_auth_ok: dist_ms(&mut all.connect_us),
        resume_to_attached: dist_ms(&mut all.attach_us),
        resume_to_greeting: dist_ms(&mut all.greeting_us),
        ack: dist_ms(&mut all.ack_us),
        message_started: dist_ms(&mut all.started_us),
        first_token: dist_ms(&mut all.ttft_us),
        done: dist_ms(&mut all.done_us),
        started_to_first_token: dist_ms(&mut all.started_to_token_us),
        first_token_answerable: dist_ms(&mut all.ttft_on_us),
        first_token_unanswerable: dist_ms(&mut all.ttft_off_us),
        done_answerable: dist_ms(&mut all.done_on_us),
        done_unanswerable: dist_ms(&mut all.done_off_us),
    };
    let rss_growth = rss_after as i64 - rss_before as i64;
    let show = |d: &common::Dist| format!("{:.1}/{:.1}/{:.1}/{:.1}", d.p50, d.p95, d.p99, d.max);
    println!(
        "chat {:?} v={visitors}: {} answers in {secs:.1} s ({:.1}/s), server {:.2} ms CPU per answer; \
         p50/p95/p99/max ms: session create {}, ack {}, started {}, first token {}, done {}; \
         answerable: grounded {}/{}, right document {}, fact quoted {}; unanswerable: fallback {}/{}; \
         frames {}, seq gaps {}, duplicates {}, content mismatches {}; visitors failed {}; errors {:?}; \
         statements over 1 s {}; server {:.2} cores, RSS {} → {} KiB; generator {:.2} cores; other processes {} cores",
        args.transport,
        all.answers,
        all.answers as f64 / secs,
        server_cost.cpu_s * 1000.0 / all.answers.max(1) as f64,
        show(&latency.session_create),
        show(&latency.ack),
        show(&latency.message_started),
        show(&latency.first_token),
        show(&latency.done),
        all.on_grounded,
        all.on_answered,
        all.on_right_doc,
        all.on_fact,
        all.off_fallback,
        all.off_answered,
        all.frames,
        all.gaps,
        all.duplicates,
        all.content_mismatches,
        all.visitors_failed,
        all.errors,
        slow.len(),
        server_cost.cores,
        rss_before,
        rss_after,
        generator.cores,
        machine_load["other_processes_cores"],
    );
    for error in all.first_errors.iter().take(5) {
        println!("  error: {error}");
    }
    Ok(json!({
        "visitors": visitors,
        "wall_s": common::round3(secs),
        "questions_asked": all.asked,
        "answers": all.answers,
        "answers_per_s": common::round3(all.answers as f64 / secs),
        "visitors_completed": all.visitors_done,
        "visitors_failed": all.visitors_failed,
        "latency_ms": latency,
        "retrieval": {
            "answerable_asked": all.on_asked,
            "answerable_answered": all.on_answered,
            "grounded": all.on_grounded,
            "grounded_rate": rate(all.on_grounded, all.on_answered),
            "right_document_cited": all.on_right_doc,
            "hit_rate": rate(all.on_right_doc, all.on_answered),
            "fact_quoted": all.on_fact,
            "fact_rate": rate(all.on_fact, all.on_answered),
            "unanswerable_asked": all.off_asked,
            "unanswerable_answered": all.off_answered,
            "fallback": all.off_fallback,
            "fallback_rate": rate(all.off_fallback, all.off_answered),
        },
        "frames": all.frames,
        "seq_gaps": all.gaps,
        "seq_duplicates": all.duplicates,
        "content_mismatches": all.content_mismatches,
        "cancelled_answers": all.cancelled,
        "errors_by_code": all.errors,
        "first_errors": all.first_errors,
        "server_cpu_ms_per_answer": if all.answers > 0 {
            common::round3(server_cost.cpu_s * 1000.0 / all.answers as f64)
        } else {
            0.0
        },
        "server_slow_statements": slow_summary(&slow),
        "server": server_cost,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_growth_kib": rss_growth,
        "server_rss_growth_per_visitor_bytes": if visitors > 0 { rss_growth * 1024 / visitors as i64 } else { 0 },
        "generator": generator,
        "machine_load": machine_load,
    }))
}
