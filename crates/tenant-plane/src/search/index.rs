//! The keyword index: one tantivy index in `<data dir>/index` holding every tenant's incidents,
//! log lines and runbooks, scored with BM25. Every query is wrapped in a mandatory filter on
//! the tenant, in one place ([`SearchIndex::search`] and [`SearchIndex::lookup`]), so one
//! tenant can never match another's documents whatever its query text says.
//!
//! The index is derived data. Its commit payload records the store it was built from and, per
//! tenant, the last write batch it holds; when it is missing, unreadable, of another schema
//! version or built from another database, it is deleted and rebuilt from the store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::store::incidents::IncidentDoc;
use crate::store::logs::FeedLogLine;
use crate::store::{Runbook, Timestamp};

/// Bumped whenever the schema or what documents hold changes: an index of another version is
/// rebuilt.
const SCHEMA_VERSION: u32 = 2;
/// Indexing memory, split across the writer's threads.
const WRITER_MEMORY: usize = 96 * 1024 * 1024;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 220;
/// When collapsing log lines by shape, how many more hits than asked for are read, at most.
const COLLAPSE_DEPTH: usize = 5;
const MAX_COLLAPSE_FETCH: usize = 500;

/// What a search document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// An incident (title, description, alert titles, change summaries).
    Incident,
    /// One log line.
    Log,
    /// A runbook.
    Runbook,
}

impl DocKind {
    /// The name used in the API and the index.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Incident => "incident",
            DocKind::Log => "log",
            DocKind::Runbook => "runbook",
        }
    }

    fn parse(s: &str) -> Option<DocKind> {
        match s {
            "incident" => Some(DocKind::Incident),
            "log" => Some(DocKind::Log),
            "runbook" => Some(DocKind::Runbook),
            _ => None,
        }
    }
}

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed.
    #[error("search index error while {action}: {source}")]
    Tantivy {
        /// What the index was doing.
        action: &'static str,
        /// Why.
        #[source]
        source: tantivy::TantivyError,
    },
    /// The index directory could not be prepared.
    #[error("cannot prepare the search index directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another process has the index open.
    #[error(
        "the search index {path} is in use by another process: two tenant planes cannot share a TP_DATA_DIR (give each replica its own)"
    )]
    InUse {
        /// The lock file.
        path: PathBuf,
    },
}

trait Ctx<T> {
    fn ctx(self, action: &'static str) -> Result<T, IndexError>;
}

impl<T> Ctx<T> for tantivy::Result<T> {
    fn ctx(self, action: &'static str) -> Result<T, IndexError> {
        self.map_err(|source| IndexError::Tantivy { action, source })
    }
}

/// Filters every search can apply.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only this kind.
    pub kind: Option<DocKind>,
    /// Only these services (any of them).
    pub services: Vec<String>,
    /// Only these severities: incident severity, log level (any of them).
    pub severities: Vec<String>,
    /// At or after (incident start, log time, runbook creation).
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Only log lines of this incident (and the incident itself).
    pub incident_id: Option<String>,
}

/// Text with highlighted byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Highlighted {
    /// The text (a fragment of the document).
    pub text: String,
    /// Byte ranges of `text` that match the query.
    pub ranges: Vec<(usize, usize)>,
}

/// One document found, with what the result list shows.
#[derive(Debug, Clone)]
pub struct IndexedDoc {
    /// Kind.
    pub kind: DocKind,
    /// Id.
    pub id: String,
    /// BM25 score (0 for lookups).
    pub score: f32,
    /// Incident or runbook title.
    pub title: Option<String>,
    /// The whole indexed body (description, message, markdown).
    pub body: String,
    /// Services.
    pub services: Vec<String>,
    /// Incident severity or log level.
    pub severity: Option<String>,
    /// Incident status.
    pub status: Option<String>,
    /// The incident a log line belongs to.
    pub incident_id: Option<String>,
    /// Its time.
    pub ts: Timestamp,
    /// A log line's message shape (lines differing only in numbers and ids share it).
    pub template: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    tenant: Field,
    kind: Field,
    id: Field,
    title: Field,
    body: Field,
    service: Field,
    service_text: Field,
    severity: Field,
    status: Field,
    incident_id: Field,
    ts: Field,
    template: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let stemmed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        tenant: b.add_text_field("tenant", STRING),
        kind: b.add_text_field("kind", STRING | STORED),
        id: b.add_text_field("id", STRING | STORED),
        title: b.add_text_field("title", stemmed.clone() | STORED),
        body: b.add_text_field("body", stemmed.clone() | STORED),
        service: b.add_text_field("service", STRING | STORED),
        service_text: b.add_text_field("service_text", stemmed),
        severity: b.add_text_field("severity", STRING | STORED),
        status: b.add_text_field("status", STRING | STORED),
        incident_id: b.add_text_field("incident_id", STRING | STORED),
        ts: b.add_i64_field("ts", INDEXED | FAST | STORED),
        template: b.add_i64_field("template", STORED),
    };
    (b.build(), fields)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Payload {
    version: u32,
    store_id: String,
    /// Per tenant: every write batch up to this one is in the index.
    watermarks: BTreeMap<String, i64>,
}

/// The index's single writer. It is open while there is indexing to do and released when the
/// indexer finds nothing new ([`SearchIndex::release_writer`]): an open writer holds tantivy's
/// document channel (~2.5 MB, allocated in full when it opens) and its worker and merge
/// threads, which a tenant plane that is not ingesting has no use for.
enum WriterSlot {
    /// Not open; the next write opens it.
    Released,
    Open(Box<IndexWriter>),
    /// Closed for good (shutting down): writes fail.
    Closed,
}

/// The index, its reader and its single writer.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<WriterSlot>,
    /// One process per index, from open to close (see [`lock_dir`]).
    dir_lock: Mutex<Option<std::fs::File>>,
    fields: Fields,
    parser: QueryParser,
    committed: Mutex<Payload>,
    dir: PathBuf,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .finish()
    }
}

/// How [`SearchIndex::open`] found the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A usable index: it catches up from its watermarks.
    Existing,
    /// There was none: built from the store.
    Created,
    /// It was unusable and was discarded: rebuilt from the store.
    Rebuilt(String),
}

impl SearchIndex {
    /// Opens the index in `dir`, or creates it, discarding one that cannot be trusted.
    pub fn open(dir: &Path, store_id: &str) -> Result<(SearchIndex, Opened), IndexError> {
        // Before anything else: a rebuild below deletes the directory.
        let dir_lock = lock_dir(dir)?;
        let (schema, fields) = schema();
        let existing = dir.join("meta.json").exists();
        let (index, payload, opened) = if existing {
            match Self::try_open(dir, &schema, store_id) {
                Ok((index, payload)) => (index, payload, Opened::Existing),
                Err(why) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "search index unusable ({why}); deleting it and rebuilding from the store"
                    );
                    let index = Self::create(dir, &schema)?;
                    (index, Self::fresh_payload(store_id), Opened::Rebuilt(why))
                }
            }
        } else {
            let index = Self::create(dir, &schema)?;
            (index, Self::fresh_payload(store_id), Opened::Created)
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .ctx("opening a reader")?;
        let writer = index.writer(WRITER_MEMORY).ctx("opening the writer")?;
        let mut parser =
            QueryParser::for_index(&index, vec![fields.title, fields.body, fields.service_text]);
        parser.set_field_boost(fields.title, 2.0);
        parser.set_field_boost(fields.service_text, 0.5);
        Ok((
            SearchIndex {
                index,
                reader,
                writer: Mutex::new(WriterSlot::Open(Box::new(writer))),
                dir_lock: Mutex::new(Some(dir_lock)),
                fields,
                parser,
                committed: Mutex::new(payload),
                dir: dir.to_owned(),
            },
            opened,
        ))
    }

    fn fresh_payload(store_id: &str) -> Payload {
        Payload {
            version: SCHEMA_VERSION,
            store_id: store_id.to_owned(),
            watermarks: BTreeMap::new(),
        }
    }

    fn try_open(dir: &Path, schema: &Schema, store_id: &str) -> Result<(Index, Payload), String> {
        let index = Index::open_in_dir(dir).map_err(|e| format!("cannot open it: {e}"))?;
        if index.schema() != *schema {
            return Err("it was built with another schema".to_owned());
        }
        let metas = index
            .load_metas()
            .map_err(|e| format!("cannot read its metadata: {e}"))?;
        let payload: Payload = match metas.payload.as_deref() {
            Some(p) => {
                serde_json::from_str(p).map_err(|e| format!("its payload is unreadable: {e}"))?
            }
            None => return Err("it has no commit payload".to_owned()),
        };
        if payload.version != SCHEMA_VERSION {
            return Err(format!(
                "it is version {} and this tenant plane writes version {SCHEMA_VERSION}",
                payload.version
            ));
        }
        if payload.store_id != store_id {
            return Err("it was built from another database".to_owned());
        }
        // Opening does not read every file: check each segment's readers can be built.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| format!("its segments are unreadable: {e}"))?;
        let searcher = reader.searcher();
        for segment in searcher.segment_readers() {
            segment
                .get_store_reader(1)
                .map_err(|e| format!("a segment's document store is unreadable: {e}"))?;
        }
        Ok((index, payload))
    }

    fn create(dir: &Path, schema: &Schema) -> Result<Index, IndexError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|source| IndexError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        Index::create_in_dir(dir, schema.clone()).ctx("creating the index")
    }

    /// The last write batch of a tenant that is committed to the index.
    pub fn watermark(&self, tenant: &str) -> i64 {
        lock(&self.committed)
            .watermarks
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    /// Every tenant's watermark.
    pub fn watermarks(&self) -> BTreeMap<String, i64> {
        lock(&self.committed).watermarks.clone()
    }

    /// Indexes (or re-indexes) an incident.
    pub fn put_incident(&self, tenant: &str, doc: &IncidentDoc) -> Result<(), IndexError> {
        let f = &self.fields;
        let i = &doc.incident;
        let mut guard = lock(&self.writer);
        let writer = self.open_writer(&mut guard)?;
        writer.delete_term(Term::from_field_text(f.id, &i.id));
        let mut body = i.description.clone();
        for t in &doc.alert_titles {
            body.push_str("\nalert: ");
            body.push_str(t);
        }
        for c in &doc.change_summaries {
            body.push_str("\nchange: ");
            body.push_str(c);
        }
        let mut d = TantivyDocument::default();
        d.add_text(f.tenant, tenant);
        d.add_text(f.kind, DocKind::Incident.as_str());
        d.add_text(f.id, &i.id);
        d.add_text(f.title, &i.title);
        d.add_text(f.body, &body);
        d.add_text(f.service, &i.service);
        d.add_text(f.service_text, &i.service);
        d.add_text(f.severity, i.severity.as_str());
        d.add_text(f.status, i.status.as_str());
        d.add_text(f.incident_id, &i.id);
        d.add_i64(f.ts, i.started_at.0);
        writer.add_document(d).ctx("adding an incident")?;
        Ok(())
    }

    /// Indexes (or re-indexes) a runbook.
    pub fn put_runbook(&self, tenant: &str, rb: &Runbook) -> Result<(), IndexError> {
        let f = &self.fields;
        let mut guard = lock(&self.writer);
        let writer = self.open_writer(&mut guard)?;
        writer.delete_term(Term::from_field_text(f.id, &rb.id));
        let mut d = TantivyDocument::default();
        d.add_text(f.tenant, tenant);
        d.add_text(f.kind, DocKind::Runbook.as_str());
        d.add_text(f.id, &rb.id);
        d.add_text(f.title, &rb.title);
        d.add_text(f.body, &rb.content);
        for s in &rb.services {
            d.add_text(f.service, s);
            d.add_text(f.service_text, s);
        }
        d.add_i64(f.ts, rb.created_at.0);
        writer.add_document(d).ctx("adding a runbook")?;
        Ok(())
    }

    /// Indexes log lines (append-only: each line is added once, at a batch boundary).
    pub fn add_logs(&self, tenant: &str, lines: &[FeedLogLine]) -> Result<(), IndexError> {
        let f = &self.fields;
        let mut guard = lock(&self.writer);
        let writer = self.open_writer(&mut guard)?;
        for l in lines {
            let mut d = TantivyDocument::default();
            d.add_text(f.tenant, tenant);
            d.add_text(f.kind, DocKind::Log.as_str());
            d.add_text(f.id, &l.id);
            d.add_text(f.body, &l.message);
            d.add_text(f.service, &l.service);
            d.add_text(f.service_text, &l.service);
            d.add_text(f.severity, l.level.as_str());
            if let Some(i) = &l.incident_id {
                d.add_text(f.incident_id, i);
            }
            d.add_i64(f.ts, l.ts.0);
            d.add_i64(f.template, l.template);
            writer.add_document(d).ctx("adding a log line")?;
        }
        Ok(())
    }

    /// Drops every document of a tenant (when the store no longer has what the index holds,
    /// for example after a database restore).
    pub fn delete_tenant(&self, tenant: &str) -> Result<(), IndexError> {
        let mut guard = lock(&self.writer);
        self.open_writer(&mut guard)?
            .delete_term(Term::from_field_text(self.fields.tenant, tenant));
        Ok(())
    }

    /// Commits everything added so far with new watermarks, and makes it searchable.
    pub fn commit(&self, watermarks: BTreeMap<String, i64>) -> Result<(), IndexError> {
        let mut payload = lock(&self.committed).clone();
        payload.watermarks = watermarks;
        let text = serde_json::to_string(&payload).unwrap_or_default();
        {
            let mut guard = lock(&self.writer);
            let writer = self.open_writer(&mut guard)?;
            let mut prepared = writer.prepare_commit().ctx("preparing a commit")?;
            prepared.set_payload(&text);
            prepared.commit().ctx("committing")?;
        }
        *lock(&self.committed) = payload;
        self.reader.reload().ctx("reloading the reader")?;
        Ok(())
    }

    /// Forgets uncommitted additions (after a failed cycle, so nothing is added twice).
    pub fn rollback(&self) -> Result<(), IndexError> {
        match &mut *lock(&self.writer) {
            WriterSlot::Open(writer) => writer.rollback().ctx("rolling back").map(|_| ()),
            // A released writer holds nothing uncommitted.
            WriterSlot::Released => Ok(()),
            WriterSlot::Closed => Err(closed()),
        }
    }

    /// Releases the writer when there is nothing to index (the indexer calls this after a
    /// cycle that found nothing new): waits for its background merges, then frees its memory
    /// and threads and tantivy's lock in the directory (the process keeps its own, see
    /// [`lock_dir`]). The next write opens it again. Anything added and not committed is
    /// discarded, as on a restart. Returns whether a writer was open.
    pub fn release_writer(&self) -> Result<bool, IndexError> {
        let mut guard = lock(&self.writer);
        if matches!(*guard, WriterSlot::Closed) {
            return Ok(false);
        }
        // Held locked while merges finish, so no write opens a second writer meanwhile.
        finish_writer(&mut guard, WriterSlot::Released)
    }

    /// Stops writing: discards uncommitted additions (they are re-indexed from the store on
    /// the next start), waits for background merges, and releases the directory's locks (so
    /// another process may open the index).
    pub fn close(&self) -> Result<(), IndexError> {
        finish_writer(&mut lock(&self.writer), WriterSlot::Closed)?;
        lock(&self.dir_lock).take();
        Ok(())
    }

    /// The writer, opened if it was released.
    fn open_writer<'a>(&self, slot: &'a mut WriterSlot) -> Result<&'a mut IndexWriter, IndexError> {
        if matches!(slot, WriterSlot::Released) {
            let writer = self.index.writer(WRITER_MEMORY).ctx("opening the writer")?;
            *slot = WriterSlot::Open(Box::new(writer));
        }
        match slot {
            WriterSlot::Open(writer) => Ok(writer),
            WriterSlot::Released | WriterSlot::Closed => Err(closed()),
        }
    }

    /// The number of committed documents of every tenant (for status).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn tenant_filter(&self, tenant: &str, filters: &Filters) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let term = |field: Field, v: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, v),
                IndexRecordOption::Basic,
            ))
        };
        let zero = |q: Box<dyn Query>| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, 0.0)) };
        let any_of = |field: Field, values: &[String]| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| (Occur::Should, term(field, v)))
                    .collect(),
            ))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, zero(term(f.tenant, tenant)))];
        if let Some(k) = filters.kind {
            clauses.push((Occur::Must, zero(term(f.kind, k.as_str()))));
        }
        if !filters.services.is_empty() {
            clauses.push((Occur::Must, zero(any_of(f.service, &filters.services))));
        }
        if !filters.severities.is_empty() {
            clauses.push((Occur::Must, zero(any_of(f.severity, &filters.severities))));
        }
        if let Some(i) = &filters.incident_id {
            clauses.push((Occur::Must, zero(term(f.incident_id, i))));
        }
        if filters.since.is_some() || filters.until.is_some() {
            let lower = filters
                .since
                .map(|t| Bound::Included(Term::from_field_i64(f.ts, t.0)))
                .unwrap_or(Bound::Unbounded);
            let upper = filters
                .until
                .map(|t| Bound::Excluded(Term::from_field_i64(f.ts, t.0)))
                .unwrap_or(Bound::Unbounded);
            clauses.push((Occur::Must, zero(Box::new(RangeQuery::new(lower, upper)))));
        }
        clauses
    }

    /// BM25 search within one tenant. An empty query lists matching documents newest first.
    /// Query syntax: words (any may match; more matches rank higher), `"exact phrases"`,
    /// `+required`, `-excluded`, `title:word`. Unparseable syntax is searched as words rather
    /// than refused.
    ///
    /// With `collapse`, log lines that share a message shape count once (the best-ranked
    /// one): otherwise a thousand copies of one error would crowd out everything else.
    pub fn search(
        &self,
        tenant: &str,
        text: &str,
        filters: &Filters,
        limit: usize,
        collapse: bool,
    ) -> Result<Vec<(IndexedDoc, Highlighted)>, IndexError> {
        let searcher = self.reader.searcher();
        let wanted = limit.max(1);
        let limit = if collapse {
            (wanted * COLLAPSE_DEPTH).min(MAX_COLLAPSE_FETCH)
        } else {
            wanted
        };
        let mut clauses = self.tenant_filter(tenant, filters);
        let text = text.trim();
        let user_query: Option<Box<dyn Query>> = if text.is_empty() || text == "*" {
            None
        } else {
            let (q, _errors) = self.parser.parse_query_lenient(text);
            Some(q)
        };
        let hits: Vec<(f32, DocAddress)> = match &user_query {
            Some(q) => {
                clauses.push((Occur::Must, q.box_clone()));
                let query = BooleanQuery::new(clauses);
                searcher
                    .search(&query, &TopDocs::with_limit(limit).order_by_score())
                    .ctx("searching")?
            }
            None => {
                clauses.push((Occur::Must, Box::new(AllQuery)));
                let query = BooleanQuery::new(clauses);
                searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(limit).order_by_fast_field::<i64>("ts", Order::Desc),
                    )
                    .ctx("listing")?
                    .into_iter()
                    .map(|(_, addr)| (0.0, addr))
                    .collect()
            }
        };
        let generators = match &user_query {
            Some(q) => Some((
                self.generator(&searcher, q.as_ref(), self.fields.body)?,
                self.generator(&searcher, q.as_ref(), self.fields.title)?,
            )),
            None => None,
        };
        let mut out = Vec::with_capacity(wanted);
        let mut shapes = std::collections::HashSet::new();
        for (score, addr) in hits {
            if out.len() == wanted {
                break;
            }
            let doc: TantivyDocument = searcher.doc(addr).ctx("reading a document")?;
            let Some(mut found) = self.to_indexed(&doc) else {
                continue;
            };
            if collapse
                && let Some(t) = found.template
                && !shapes.insert(t)
            {
                continue;
            }
            found.score = score;
            let highlight = match &generators {
                Some((body, title)) => best_highlight(&found, body, title),
                None => plain_fragment(&found.body),
            };
            out.push((found, highlight));
        }
        Ok(out)
    }

    fn generator(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        field: Field,
    ) -> Result<SnippetGenerator, IndexError> {
        let mut g = SnippetGenerator::create(searcher, query, field).ctx("preparing highlights")?;
        g.set_max_num_chars(SNIPPET_CHARS);
        Ok(g)
    }

    /// Highlights a query's matches in any text (for results that came from vector search).
    pub fn highlight(&self, text: &str, query_text: &str) -> Highlighted {
        let query_text = query_text.trim();
        if query_text.is_empty() {
            return plain_fragment(text);
        }
        let searcher = self.reader.searcher();
        let (q, _) = self.parser.parse_query_lenient(query_text);
        match self.generator(&searcher, q.as_ref(), self.fields.body) {
            Ok(g) => {
                let s = g.snippet(text);
                if s.is_empty() {
                    plain_fragment(text)
                } else {
                    to_highlighted(&s)
                }
            }
            Err(_) => plain_fragment(text),
        }
    }

    /// Finds documents of a tenant by id (for vector hits), keyed by id. Ids the tenant does
    /// not have are absent.
    pub fn lookup(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, IndexedDoc>, IndexError> {
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let mut out = HashMap::new();
        for id in ids {
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.tenant, tenant),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                ),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.id, id),
                        IndexRecordOption::Basic,
                    )),
                ),
            ]);
            let hits = searcher
                .search(&query, &TopDocs::with_limit(1).order_by_score())
                .ctx("looking a document up")?;
            if let Some((_, addr)) = hits.first() {
                let doc: TantivyDocument = searcher.doc(*addr).ctx("reading a document")?;
                if let Some(found) = self.to_indexed(&doc) {
                    out.insert(found.id.clone(), found);
                }
            }
        }
        Ok(out)
    }

    fn to_indexed(&self, doc: &TantivyDocument) -> Option<IndexedDoc> {
        let f = &self.fields;
        let text = |field: Field| {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        Some(IndexedDoc {
            kind: DocKind::parse(&text(f.kind)?)?,
            id: text(f.id)?,
            score: 0.0,
            title: text(f.title),
            body: text(f.body).unwrap_or_default(),
            services: doc
                .get_all(f.service)
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            severity: text(f.severity),
            status: text(f.status),
            incident_id: text(f.incident_id),
            ts: Timestamp(doc.get_first(f.ts).and_then(|v| v.as_i64()).unwrap_or(0)),
            template: doc.get_first(f.template).and_then(|v| v.as_i64()),
        })
    }
}

/// Takes an exclusive lock on `<dir>.lock` (beside the directory, which a rebuild deletes),
/// so that a second process opening the same index fails at once with a clear error instead
/// of both writing to it. tantivy's own directory lock cannot serve: it goes with the writer,
/// which is released while idle.
fn lock_dir(dir: &Path) -> Result<std::fs::File, IndexError> {
    let path = dir.with_extension("lock");
    let io = |source| IndexError::Dir {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(IndexError::InUse { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Puts `next` in the slot; an open writer that was there finishes its merges and is dropped
/// (releasing tantivy's lock). Returns whether one was open.
fn finish_writer(slot: &mut WriterSlot, next: WriterSlot) -> Result<bool, IndexError> {
    match std::mem::replace(slot, next) {
        WriterSlot::Open(w) => {
            w.wait_merging_threads().ctx("finishing merges")?;
            Ok(true)
        }
        WriterSlot::Released | WriterSlot::Closed => Ok(false),
    }
}

fn closed() -> IndexError {
    IndexError::Tantivy {
        action: "writing",
        source: tantivy::TantivyError::InvalidArgument("the index is closed".to_owned()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_highlighted(s: &tantivy::snippet::Snippet) -> Highlighted {
    Highlighted {
        text: s.fragment().to_owned(),
        ranges: s.highlighted().iter().map(|r| (r.start, r.end)).collect(),
    }
}

fn best_highlight(
    doc: &IndexedDoc,
    body: &SnippetGenerator,
    title: &SnippetGenerator,
) -> Highlighted {
    let b = body.snippet(&doc.body);
    if !b.highlighted().is_empty() {
        return to_highlighted(&b);
    }
    if let Some(t) = &doc.title {
        let s = title.snippet(t);
        if !s.highlighted().is_empty() {
            return to_highlighted(&s);
        }
    }
    plain_fragment(&doc.body)
}

/// The start of a text, cut at a character boundary, without highlights.
pub fn plain_fragment(text: &str) -> Highlighted {
    let end = text
        .char_indices()
        .nth(SNIPPET_CHARS)
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    Highlighted {
        text: text[..end].to_owned(),
        ranges: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook(id: &str, title: &str) -> Runbook {
        Runbook {
            id: id.to_owned(),
            title: title.to_owned(),
            content: "Restart the pod and check the node's disk.".to_owned(),
            services: vec!["checkout".to_owned()],
            tags: Vec::new(),
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
        }
    }

    fn found(index: &SearchIndex, text: &str) -> Vec<String> {
        let mut ids: Vec<String> = index
            .search("t1", text, &Filters::default(), 10, false)
            .unwrap()
            .into_iter()
            .map(|(doc, _)| doc.id)
            .collect();
        ids.sort();
        ids
    }

    /// Whether another writer could take the directory's lock now.
    fn lock_is_free(dir: &Path) -> bool {
        let other = Index::open_in_dir(dir).unwrap();
        other.writer::<TantivyDocument>(15_000_000).is_ok()
    }

    #[test]
    fn the_writer_is_released_when_idle_and_opened_again_by_the_next_write() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("index");
        let (index, opened) = SearchIndex::open(&dir, "store-1").unwrap();
        assert_eq!(opened, Opened::Created);
        assert!(!lock_is_free(&dir), "open() holds the writer");
        index
            .put_runbook("t1", &runbook("rb-1", "Disk pressure"))
            .unwrap();
        index
            .commit(BTreeMap::from([("t1".to_owned(), 1)]))
            .unwrap();

        assert!(
            index.release_writer().unwrap(),
            "an open writer is released"
        );
        assert!(
            !index.release_writer().unwrap(),
            "a second release has nothing to do"
        );
        assert!(lock_is_free(&dir), "releasing frees the directory lock");
        // A released writer holds nothing uncommitted: rolling back is a no-op, not an error.
        index.rollback().unwrap();
        assert_eq!(found(&index, "disk"), ["rb-1"], "searches need no writer");

        // The next write opens it again; what was committed before is kept.
        index
            .put_runbook("t1", &runbook("rb-2", "Disk full"))
            .unwrap();
        assert!(!lock_is_free(&dir));
        index
            .commit(BTreeMap::from([("t1".to_owned(), 2)]))
            .unwrap();
        assert_eq!(found(&index, "disk"), ["rb-1", "rb-2"]);
        assert_eq!(index.watermark("t1"), 2);

        // Uncommitted additions are discarded by a release, as by a restart.
        index
            .put_runbook("t1", &runbook("rb-3", "Disk slow"))
            .unwrap();
        assert!(index.release_writer().unwrap());
        index
            .commit(BTreeMap::from([("t1".to_owned(), 3)]))
            .unwrap();
        assert_eq!(found(&index, "disk"), ["rb-1", "rb-2"]);

        // Closed is final: writes fail, and nothing reopens the writer.
        index.close().unwrap();
        assert!(index.put_runbook("t1", &runbook("rb-4", "Disk")).is_err());
        assert!(index.rollback().is_err());
        assert!(!index.release_writer().unwrap());
        assert!(lock_is_free(&dir));
    }

    #[test]
    fn one_process_at_a_time_opens_an_index_even_while_its_writer_is_released() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("index");
        let (first, _) = SearchIndex::open(&dir, "store-1").unwrap();
        assert!(first.release_writer().unwrap());
        // A second opener (flock conflicts between two open files, in one process as in two).
        let err = SearchIndex::open(&dir, "store-1").expect_err("the index is in use");
        assert!(matches!(err, IndexError::InUse { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("index.lock") && text.contains("TP_DATA_DIR"),
            "{text}"
        );
        // The first one's index is untouched, and closing it lets the next process in.
        first.put_runbook("t1", &runbook("rb-1", "Disk")).unwrap();
        first
            .commit(BTreeMap::from([("t1".to_owned(), 1)]))
            .unwrap();
        first.close().unwrap();
        let (second, opened) = SearchIndex::open(&dir, "store-1").unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(found(&second, "disk"), ["rb-1"]);
    }

    #[test]
    fn plain_fragments_cut_at_character_boundaries() {
        let s = "é".repeat(300);
        let f = plain_fragment(&s);
        assert_eq!(f.text.chars().count(), SNIPPET_CHARS);
        assert!(f.ranges.is_empty());
    }
}
