//! `archive::export` and `archive::import` against real backends: the
//! embedded store (redb) with its directory of files, PostgreSQL (found
//! through `OPRC_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; each test that needs it
//! creates its own database) and S3 (`s3s-fs`, started per test). A
//! missing server fails the test, never skips it: see
//! `scripts/ensure-postgres.sh` and `scripts/install-s3s-fs.sh`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use oprc_blob::conformance::s3s::{BUCKET, KEY, S3sServer, SECRET};
use oprc_blob::{BlobPath, BlobStore, DirStore, S3Store, Signer};
use oprc_core::{ClassKey, ObjectId, ObjectRecord};
use oprc_server::archive::{self, NoProgress, Phase, Progress, Summary};
use oprc_store::{StateStore, Write, WriteBatch};
use serde_json::{Value, json};

// --- PostgreSQL: a fresh database per test ---------------------------------

/// A fresh database for `test`, dropped afterwards (`oprc-testenv`).
async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    oprc_testenv::with_fresh_database("oprc_archive", test).await;
}

// --- The embedded backends --------------------------------------------------

/// An embedded store and its directory of files, in `dir`.
struct Embedded {
    state: oprc_store_redb::Store,
    blobs: DirStore,
}

fn embedded(dir: &Path) -> Embedded {
    let state =
        oprc_store_redb::Store::open(oprc_store_redb::Options::new(dir.join("oprc.redb"))).unwrap();
    let signer = Signer::new(b"test-key".to_vec(), "http://127.0.0.1:1");
    let blobs = DirStore::open(dir.join("files"), signer).unwrap();
    Embedded { state, blobs }
}

// --- The data ----------------------------------------------------------------

/// Two packages: `shop` with two classes (items with files, notes without)
/// and `extra`, whose class has no objects.
const SHOP: &str = "\
name: shop
classes:
  - name: item
    stateSpec:
      keySpecs:
        - name: img
          access: PUBLIC
        - name: doc
          access: PUBLIC
  - name: note
";
const EXTRA: &str = "\
name: extra
classes:
  - name: tag
";

fn class(key: &str) -> ClassKey {
    ClassKey::new(key).unwrap()
}

fn path(s: &str) -> BlobPath {
    BlobPath::parse(s).unwrap()
}

/// The bytes stored at `p`: one file is larger than a chunk of any store.
fn content(p: &BlobPath) -> Vec<u8> {
    if p.to_string() == "shop.item/i0000/v2/img" {
        (0..600_000).map(|i| (i % 251) as u8).collect()
    } else {
        format!("bytes of {p}\n").repeat(3).into_bytes()
    }
}

async fn put(blobs: &dyn BlobStore, p: &BlobPath) {
    let body = futures_util::stream::iter([Ok(Bytes::from(content(p)))]).boxed();
    blobs.put(p, body).await.unwrap();
}

async fn read(blobs: &dyn BlobStore, p: &BlobPath) -> Option<Vec<u8>> {
    let mut body = blobs.get(p, None).await.unwrap()?.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Some(out)
}

async fn listed(blobs: &dyn BlobStore) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let page = blobs.list(after.as_ref(), 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.path.clone());
        out.extend(page.iter().map(|l| l.path.to_string()));
    }
    out
}

/// What the source holds: packages, records by class, and the file
/// versions the records hold.
struct Fixture {
    packages: Vec<(String, String)>,
    objects: BTreeMap<ClassKey, Vec<ObjectRecord>>,
    files: BTreeSet<String>,
}

impl Fixture {
    fn summary(&self) -> Summary {
        Summary {
            packages: self.packages.len() as u64,
            objects: self.objects.values().map(|o| o.len() as u64).sum(),
            files: self.files.len() as u64,
            bytes: self
                .files
                .iter()
                .map(|p| content(&path(p)).len() as u64)
                .sum(),
        }
    }
}

/// Stores `items` items (every 100th with two files, one of them with an
/// older version beside) and three notes, with revisions and async-log
/// offsets, plus a version of an object that is gone.
async fn fill(state: &dyn StateStore, blobs: &dyn BlobStore, items: usize) -> Fixture {
    let packages = vec![
        ("extra".to_owned(), EXTRA.to_owned()),
        ("shop".to_owned(), SHOP.to_owned()),
    ];
    for (name, source) in &packages {
        state.put_package(name, source).await.unwrap();
    }
    let mut objects: BTreeMap<ClassKey, Vec<ObjectRecord>> = BTreeMap::new();
    let mut files = BTreeSet::new();
    for i in 0..items {
        let oid = format!("i{i:04}");
        let mut obj = ObjectRecord::new(
            class("shop.item"),
            ObjectId::new(oid.as_str()).unwrap(),
            json!({"n": i, "name": format!("item {i}")}),
        );
        obj.meta.revision = (i % 7 + 1) as u64;
        obj.meta.last_offset = 100 + i as u64;
        if i % 100 == 0 {
            obj.meta.ver_ids.insert("img".into(), "v2".into());
            obj.meta.ver_ids.insert("doc".into(), "v1".into());
            for live in [
                format!("shop.item/{oid}/v2/img"),
                format!("shop.item/{oid}/v1/doc"),
            ] {
                put(blobs, &path(&live)).await;
                files.insert(live);
            }
            put(blobs, &path(&format!("shop.item/{oid}/v1/img"))).await;
        }
        objects.entry(class("shop.item")).or_default().push(obj);
    }
    for n in 0..3 {
        let mut obj = ObjectRecord::new(
            class("shop.note"),
            ObjectId::new(format!("n{n}")).unwrap(),
            json!({"text": format!("note {n}")}),
        );
        obj.meta.revision = 3;
        obj.meta.last_offset = 7;
        obj.meta
            .refs
            .insert("item".into(), ObjectId::new("i0000").unwrap());
        objects.entry(class("shop.note")).or_default().push(obj);
    }
    put(blobs, &path("shop.item/gone/v1/img")).await;
    for records in objects.values() {
        for chunk in records.chunks(400) {
            let writes = chunk
                .iter()
                .map(|record| Write::PutObject {
                    record: record.clone(),
                    expected_revision: None,
                })
                .collect();
            state.commit(WriteBatch::of(writes)).await.unwrap();
        }
    }
    Fixture {
        packages,
        objects,
        files,
    }
}

/// Checks that the stores hold exactly what `fixture` holds, with every
/// `lastOffset` 0, and exactly the versions the objects hold.
async fn assert_holds(state: &dyn StateStore, blobs: &dyn BlobStore, fixture: &Fixture) {
    assert_eq!(state.list_packages().await.unwrap(), fixture.packages);
    for cls in [class("shop.item"), class("shop.note"), class("extra.tag")] {
        let mut stored = Vec::new();
        let mut after = None;
        loop {
            let page = state.list_objects(&cls, after.as_ref(), 333).await.unwrap();
            stored.extend(page.objects);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<ObjectRecord> = fixture
            .objects
            .get(&cls)
            .into_iter()
            .flatten()
            .map(|o| {
                let mut o = o.clone();
                o.meta.last_offset = 0;
                o
            })
            .collect();
        assert_eq!(stored.len(), expected.len(), "objects of {cls}");
        assert_eq!(stored, expected, "objects of {cls}");
    }
    assert_eq!(listed(blobs).await, fixture.files);
    for p in &fixture.files {
        let p = path(p);
        assert_eq!(read(blobs, &p).await, Some(content(&p)), "{p}");
    }
}

/// The versions in an archive's `blobs/`, as blob paths.
fn archived(archive: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, depth: usize, prefix: &str, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let at = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if depth == 3 {
                assert!(entry.file_type().unwrap().is_file(), "{at}");
                out.insert(at);
            } else {
                walk(&entry.path(), depth + 1, &at, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&archive.join("blobs"), 0, "", &mut out);
    out
}

fn manifest(archive: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(archive.join("manifest.json")).unwrap()).unwrap()
}

/// Counts what it is told, and checks that it is told consistently.
#[derive(Default)]
struct Recorder {
    totals: Mutex<HashMap<Phase, u64>>,
    done: Mutex<HashMap<Phase, u64>>,
    finished: Mutex<HashSet<Phase>>,
}

impl Progress for Recorder {
    fn total(&self, phase: Phase, total: u64) {
        self.totals.lock().unwrap().insert(phase, total);
    }

    fn advance(&self, phase: Phase, done: u64) {
        assert!(!self.finished.lock().unwrap().contains(&phase), "{phase:?}");
        *self.done.lock().unwrap().entry(phase).or_default() += done;
    }

    fn finish(&self, phase: Phase) {
        assert!(self.finished.lock().unwrap().insert(phase), "{phase:?}");
    }
}

impl Recorder {
    fn done(&self) -> Summary {
        let done = self.done.lock().unwrap();
        let of = |p| done.get(&p).copied().unwrap_or(0);
        Summary {
            packages: of(Phase::Packages),
            objects: of(Phase::Objects),
            files: of(Phase::Files),
            bytes: of(Phase::Bytes),
        }
    }

    fn totals(&self) -> HashMap<Phase, u64> {
        self.totals.lock().unwrap().clone()
    }
}

fn totals(pairs: &[(Phase, u64)]) -> HashMap<Phase, u64> {
    pairs.iter().copied().collect()
}

// --- Round trips ---------------------------------------------------------------

/// Embedded -> archive -> PostgreSQL + S3 -> archive -> embedded: every
/// package source, every record (with `lastOffset` 0) and every held
/// file's bytes arrive; versions no object holds stay behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_moves_from_embedded_to_postgres_and_s3_and_back() {
    with_db(|url| async move {
        let tmp = tempfile::tempdir().unwrap();
        let source = embedded(&tmp.path().join("source"));
        // More items than a page of the export (500), in three pages.
        let fixture = fill(&source.state, &source.blobs, 1203).await;
        let expected = fixture.summary();
        assert_eq!((expected.objects, expected.files), (1206, 26));
        assert_eq!(listed(&source.blobs).await.len(), 26 + 13 + 1);

        let first = tmp.path().join("backups/first");
        let recorder = Recorder::default();
        let exported = archive::export(&source.state, &source.blobs, &first, &recorder)
            .await
            .unwrap();
        assert_eq!(exported, expected);
        assert_eq!(recorder.done(), expected);
        assert_eq!(recorder.totals(), totals(&[(Phase::Packages, 2)]));
        assert_eq!(archived(&first), fixture.files, "only held versions travel");
        let m = manifest(&first);
        assert_eq!(m["format"], 1);
        assert_eq!(m["blobStore"], "dir");
        assert_eq!(m["counts"], serde_json::to_value(expected).unwrap());
        assert!(m["exportedAt"].as_str().unwrap().ends_with('Z'), "{m}");
        let lines = std::fs::read_to_string(first.join("objects.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1206);
        let entries: Vec<String> = std::fs::read_dir(tmp.path().join("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, ["first"], "no temporary directory is left");

        let pg = oprc_store_pg::PgStore::connect(&url, oprc_store_pg::Options::default())
            .await
            .unwrap();
        let s3 = S3sServer::start();
        let bucket = S3Store::connect(s3.options(BUCKET, KEY, SECRET))
            .await
            .unwrap();
        let recorder = Recorder::default();
        let imported = archive::import(&first, &pg, &bucket, &recorder)
            .await
            .unwrap();
        assert_eq!(imported, expected);
        assert_eq!(recorder.done(), expected);
        assert_eq!(
            recorder.totals(),
            totals(&[
                (Phase::Check, expected.objects),
                (Phase::Packages, expected.packages),
                (Phase::Objects, expected.objects),
                (Phase::Files, expected.files),
                (Phase::Bytes, expected.bytes),
            ])
        );
        assert_holds(&pg, &bucket, &fixture).await;

        let second = tmp.path().join("backups/second");
        let exported = archive::export(&pg, &bucket, &second, &NoProgress)
            .await
            .unwrap();
        assert_eq!(exported, expected);
        assert_eq!(manifest(&second)["blobStore"], "s3");
        pg.close().await;

        let back = embedded(&tmp.path().join("back"));
        let imported = archive::import(&second, &back.state, &back.blobs, &NoProgress)
            .await
            .unwrap();
        assert_eq!(imported, expected);
        assert_holds(&back.state, &back.blobs, &fixture).await;
    })
    .await;
}

// --- Refusals ----------------------------------------------------------------------

/// A small source and its export, in `tmp`.
async fn exported(tmp: &Path) -> (Fixture, PathBuf) {
    let source = embedded(&tmp.join("source"));
    let fixture = fill(&source.state, &source.blobs, 201).await;
    let at = tmp.join("archive");
    archive::export(&source.state, &source.blobs, &at, &NoProgress)
        .await
        .unwrap();
    (fixture, at)
}

/// Imports `archive` into fresh embedded stores; on failure, checks that
/// nothing was written and returns the message.
async fn refused_import(archive: &Path, tmp: &Path) -> String {
    let dest = embedded(&tmp.join(format!("dest-{}", uuid_like())));
    let e = archive::import(archive, &dest.state, &dest.blobs, &NoProgress)
        .await
        .expect_err("the import is refused");
    assert!(dest.state.list_packages().await.unwrap().is_empty());
    assert!(listed(&dest.blobs).await.is_empty());
    format!("{e:#}")
}

fn uuid_like() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn assert_says(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_a_target_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let source = embedded(&tmp.path().join("source"));
    fill(&source.state, &source.blobs, 3).await;
    let target = tmp.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "mine").unwrap();
    let e = archive::export(&source.state, &source.blobs, &target, &NoProgress)
        .await
        .unwrap_err();
    assert_says(&format!("{e:#}"), &["taken", "is not empty"]);
    assert_eq!(
        std::fs::read_to_string(target.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    archive::export(&source.state, &source.blobs, &empty, &NoProgress)
        .await
        .unwrap();
    assert!(empty.join("manifest.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_a_destination_that_holds_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, archive) = exported(tmp.path()).await;

    let dest = embedded(&tmp.path().join("with-package"));
    dest.state
        .put_package("other", "name: other\n")
        .await
        .unwrap();
    let e = archive::import(&archive, &dest.state, &dest.blobs, &NoProgress)
        .await
        .unwrap_err();
    assert_says(&format!("{e:#}"), &["already holds 1 package(s) (`other`)"]);
    assert!(listed(&dest.blobs).await.is_empty());

    let dest = embedded(&tmp.path().join("with-object"));
    let obj = ObjectRecord::new(class("shop.note"), ObjectId::new("n9").unwrap(), json!({}));
    dest.state
        .commit(WriteBatch::of(vec![Write::PutObject {
            record: obj,
            expected_revision: None,
        }]))
        .await
        .unwrap();
    let e = archive::import(&archive, &dest.state, &dest.blobs, &NoProgress)
        .await
        .unwrap_err();
    assert_says(
        &format!("{e:#}"),
        &["already holds objects of class shop.note", "shop.note/n9"],
    );
    assert!(dest.state.list_packages().await.unwrap().is_empty());
    assert!(listed(&dest.blobs).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_a_missing_corrupt_or_newer_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, archive) = exported(tmp.path()).await;
    let manifest = archive.join("manifest.json");
    let good = std::fs::read_to_string(&manifest).unwrap();

    std::fs::remove_file(&manifest).unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(&e, &["has no manifest.json", "did not finish"]);

    for (text, says) in [
        (
            "{\"format\": 1, \"coun",
            "manifest.json is corrupt (not JSON)",
        ),
        (
            "[1, 2]",
            "manifest.json is corrupt: it has no format version",
        ),
        (
            "{\"format\": 2, \"future\": true}",
            "of archive format 2, but this version of oprc reads format 1 only",
        ),
        (
            "{\"format\": 1, \"exportedAt\": \"x\", \"blobStore\": \"dir\", \"counts\": 5}",
            "manifest.json is corrupt: invalid type",
        ),
    ] {
        std::fs::write(&manifest, text).unwrap();
        let e = refused_import(&archive, tmp.path()).await;
        assert_says(&e, &[says]);
    }

    // Counts that do not match what the archive holds.
    let mut m: Value = serde_json::from_str(&good).unwrap();
    m["counts"]["objects"] = json!(205);
    std::fs::write(&manifest, m.to_string()).unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(&e, &["does not hold what its manifest says", "204 objects"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_truncated_or_corrupt_lines_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, archive) = exported(tmp.path()).await;
    let objects = archive.join("objects.jsonl");
    let good = std::fs::read_to_string(&objects).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 204);

    // The last line cut in half, as by a full disk or an interrupted copy.
    let cut = good.len() - lines[203].len() / 2 - 1;
    std::fs::write(&objects, &good[..cut]).unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(&e, &["objects.jsonl line 204 is cut short", "truncated"]);

    // Cut just before the last line end: complete JSON, but no line end.
    std::fs::write(&objects, &good[..good.len() - 1]).unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(&e, &["objects.jsonl line 204 is cut short"]);

    let corrupt = |n: usize, line: &str, says: &[&str]| {
        let mut edited = lines.clone();
        edited[n - 1] = line;
        let text = edited.join("\n") + "\n";
        std::fs::write(&objects, text).unwrap();
        let archive = archive.clone();
        let tmp = tmp.path().to_owned();
        let says: Vec<String> = says.iter().map(|s| (*s).to_owned()).collect();
        async move {
            let e = refused_import(&archive, &tmp).await;
            let says: Vec<&str> = says.iter().map(String::as_str).collect();
            assert_says(&e, &says);
        }
    };
    corrupt(
        2,
        r#"{"_meta": {"id": 5, "cls": "shop.item", "revision": 1}, "data": {}}"#,
        &["objects.jsonl line 2 is corrupt", "invalid type"],
    )
    .await;
    corrupt(3, "", &["objects.jsonl line 3 is empty"]).await;
    corrupt(
        4,
        r#"{"_meta": {"id": "x", "cls": "shop.gone", "revision": 1}}"#,
        &["objects.jsonl line 4", "class shop.gone, which no package"],
    )
    .await;
    // The same object twice (lines 5 and 6 are both i0004).
    let fifth = lines[4].to_owned();
    corrupt(6, &fifth, &["objects.jsonl line 6", "id order, each once"]).await;
    corrupt(
        7,
        r#"{"_meta": {"id": "i0006", "cls": "shop.item", "revision": 1, "verIds": {"img": ".."}}}"#,
        &["objects.jsonl line 7", "shop.item/i0006", "file `img`"],
    )
    .await;
    std::fs::write(&objects, &good).unwrap();

    // A held version missing from the archive's blobs.
    std::fs::remove_file(archive.join("blobs/shop.item/i0100/v1/doc")).unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(
        &e,
        &[
            "objects.jsonl line 101",
            "object shop.item/i0100 holds version `v1` of file `doc`",
        ],
    );

    let packages = archive.join("packages.jsonl");
    std::fs::write(&packages, "{\"name\": \"shop\", \"source\": 3}\n").unwrap();
    let e = refused_import(&archive, tmp.path()).await;
    assert_says(&e, &["packages.jsonl line 1 is corrupt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_fails_naming_the_object_and_file_whose_version_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let source = embedded(&tmp.path().join("source"));
    fill(&source.state, &source.blobs, 201).await;
    let mut obj = source
        .state
        .get_object(&class("shop.item"), &ObjectId::new("i0150").unwrap())
        .await
        .unwrap()
        .unwrap();
    obj.meta.ver_ids.insert("img".into(), "v9".into());
    let revision = obj.meta.revision;
    obj.meta.revision += 1;
    source
        .state
        .commit(WriteBatch::of(vec![Write::PutObject {
            record: obj,
            expected_revision: Some(revision),
        }]))
        .await
        .unwrap();
    let parent = tmp.path().join("backups");
    let e = archive::export(
        &source.state,
        &source.blobs,
        &parent.join("broken"),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert_says(
        &format!("{e:#}"),
        &[
            "object shop.item/i0150 holds version `v9` of file `img`",
            "shop.item/i0150/v9/img",
        ],
    );
    assert_eq!(
        std::fs::read_dir(&parent).unwrap().count(),
        0,
        "neither the archive nor its temporary directory is left"
    );
}
