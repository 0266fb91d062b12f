//! Connecting, checking the options, and making sure the stream exists
//! with a config the log can rely on.

use std::time::Duration;

use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use oprc_store::{Error, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Options;
use crate::error::{self, ApiError};

/// A JetStream API request (`subject` without the `$JS.API.` prefix).
pub(crate) async fn api<T: DeserializeOwned>(
    js: &jetstream::Context,
    subject: String,
    body: &impl serde::Serialize,
) -> std::result::Result<T, ApiError> {
    match js.request(subject, body).await {
        Ok(Response::Ok(v)) => Ok(v),
        Ok(Response::Err { error }) => Err(ApiError::Server(error)),
        Err(e) => Err(ApiError::Request(e)),
    }
}

/// What the log needs of the stream's info. `created` stays the server's
/// text, so the identity does not depend on a date type.
#[derive(Debug, Deserialize)]
struct StreamInfo {
    config: stream::Config,
    created: String,
}

/// Refuses options the server would refuse later, or that would break the
/// subject layout, with what to change.
pub(crate) fn validate(o: &Options) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c))
    };
    let bad = |what: String| Err(Error::internal(format!("invalid nats log option: {what}")));
    if !name_ok(&o.stream) {
        return bad(format!(
            "stream {:?} must be non-empty without spaces, '.', '*', '>', '/' or '\\'",
            o.stream
        ));
    }
    if !name_ok(&o.consumer_prefix) {
        return bad(format!(
            "consumer_prefix {:?} must be non-empty without spaces, '.', '*', '>', '/' or '\\'",
            o.consumer_prefix
        ));
    }
    let token_ok = |t: &str| {
        !t.is_empty()
            && !t
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "*>".contains(c))
    };
    if !o.subject_prefix.split('.').all(token_ok) {
        return bad(format!(
            "subject_prefix {:?} must be dot-separated non-empty tokens without spaces or wildcards",
            o.subject_prefix
        ));
    }
    if !(1..=5).contains(&o.replicas) {
        return bad(format!(
            "replicas is {}; JetStream allows 1 to 5",
            o.replicas
        ));
    }
    if o.max_ack_pending < 1 || o.pull_batch < 1 {
        return bad("max_ack_pending and pull_batch must be at least 1".to_owned());
    }
    for (name, d) in [
        ("ack_wait", o.ack_wait),
        ("duplicate_window", o.duplicate_window),
        ("request_timeout", o.request_timeout),
        ("connect_timeout", o.connect_timeout),
    ] {
        if d < Duration::from_millis(1) {
            return bad(format!("{name} must be positive"));
        }
    }
    Ok(())
}

/// Takes the log's settings out of the URL's query (`?stream=NAME&
/// subjects=PREFIX&consumers=PREFIX&replicas=N`, on any URL of a list)
/// into `options`, and answers the URLs without them.
pub(crate) fn apply_query(urls: &str, o: &mut Options) -> Result<String> {
    let mut plain = Vec::new();
    for url in urls.split(',') {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        plain.push(base.trim().to_owned());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "stream" => o.stream = value.to_owned(),
                "subjects" => o.subject_prefix = value.to_owned(),
                "consumers" => o.consumer_prefix = value.to_owned(),
                "replicas" => {
                    o.replicas = value.parse().map_err(|_| {
                        Error::internal(format!(
                            "replicas={value:?} in the nats url is not a number"
                        ))
                    })?
                }
                other => {
                    return Err(Error::internal(format!(
                        "unknown setting {other:?} in the nats url; known: stream, subjects, \
                         consumers, replicas"
                    )));
                }
            }
        }
    }
    Ok(plain.join(","))
}

/// Connects once (a server that cannot be reached now fails the start);
/// once connected, the client reconnects by itself for ever.
pub(crate) async fn connect(url: &str, o: &Options) -> Result<(Client, jetstream::Context)> {
    let redacted = error::redact_url(url);
    let (plain, creds) = error::split_credentials(url);
    let addrs = plain
        .iter()
        .map(|u| u.parse::<ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::with_source(
                oprc_store::ErrorKind::Internal,
                format!("invalid nats url {redacted}"),
                e,
            )
        })?;
    if addrs.is_empty() {
        return Err(Error::internal("the nats url is empty"));
    }
    let mut options = ConnectOptions::new()
        .name("oprc-log")
        .connection_timeout(o.connect_timeout)
        .request_timeout(Some(o.request_timeout))
        .max_reconnects(None)
        .event_callback({
            let url = redacted.clone();
            move |event| {
                let url = url.clone();
                async move {
                    match event {
                        Event::Disconnected => {
                            tracing::warn!(%url, "disconnected from nats; reconnecting")
                        }
                        Event::Connected => tracing::info!(%url, "connected to nats"),
                        other => tracing::warn!(%url, event = %other, "nats connection event"),
                    }
                }
            }
        });
    if let Some((user, password)) = creds.user {
        options = options.user_and_password(user, password);
    } else if let Some(token) = creds.token {
        options = options.token(token);
    }
    let client = options
        .connect(addrs)
        .await
        .map_err(|e| error::connect(e, &redacted))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(o.request_timeout)
        .build(client.clone());
    Ok((client, js))
}

/// The config of a stream created by the log.
fn wanted(o: &Options) -> stream::Config {
    stream::Config {
        name: o.stream.clone(),
        subjects: vec![format!("{}.*", o.subject_prefix)],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: o.replicas,
        duplicate_window: o.duplicate_window,
        allow_direct: true,
        max_bytes: -1,
        max_messages: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        description: Some("oparaca invocation log: one subject per partition".to_owned()),
        ..Default::default()
    }
}

/// Whether an existing stream can serve as the log: `Err` lists what is
/// incompatible; `Ok(Some(config))` is an update to apply (settings the log
/// may change on its own), `Ok(None)` the stream as it is.
pub(crate) fn check(
    existing: &stream::Config,
    o: &Options,
) -> std::result::Result<Option<stream::Config>, Vec<String>> {
    let want = wanted(o);
    let mut problems = Vec::new();
    if existing.subjects != want.subjects {
        problems.push(format!(
            "its subjects are {:?}, not {:?}",
            existing.subjects, want.subjects
        ));
    }
    if existing.retention != RetentionPolicy::WorkQueue {
        problems.push(format!(
            "its retention is {:?}, not WorkQueue",
            existing.retention
        ));
    }
    if existing.storage != StorageType::File {
        problems.push(format!(
            "its storage is {:?}, not File (entries must survive a server restart)",
            existing.storage
        ));
    }
    if existing.no_ack {
        problems.push("it does not acknowledge publishes (no_ack)".to_owned());
    }
    if existing.sealed || existing.mirror.is_some() {
        problems.push("it is sealed or a mirror: it takes no appends".to_owned());
    }
    let limited = existing.max_age > Duration::ZERO
        || existing.max_messages > 0
        || existing.max_bytes > 0
        || existing.max_messages_per_subject > 0;
    if limited && existing.discard == stream::DiscardPolicy::Old {
        problems.push(
            "it has limits with discard Old: entries could be dropped before they are applied"
                .to_owned(),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if existing.num_replicas != want.num_replicas {
        tracing::warn!(
            stream = %o.stream,
            replicas = existing.num_replicas,
            wanted = want.num_replicas,
            "the stream keeps its number of replicas; change it with the nats cli"
        );
    }
    if existing.duplicate_window != want.duplicate_window || !existing.allow_direct {
        let mut update = existing.clone();
        update.duplicate_window = want.duplicate_window;
        update.allow_direct = true;
        return Ok(Some(update));
    }
    Ok(None)
}

/// Finds or creates the stream and answers the log's identity.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    o: &Options,
    url: &str,
) -> Result<String> {
    let name = &o.stream;
    let info_subject = format!("STREAM.INFO.{name}");
    let empty = serde_json::json!({});
    let mut created_here = false;
    let info = loop {
        match api::<StreamInfo>(js, info_subject.clone(), &empty).await {
            Ok(info) => break info,
            Err(e) if e.code() == Some(ErrorCode::STREAM_NOT_FOUND) && !created_here => {
                created_here = true;
                let want = wanted(o);
                match api::<StreamInfo>(js, format!("STREAM.CREATE.{name}"), &want).await {
                    Ok(info) => {
                        tracing::info!(stream = %name, subjects = ?want.subjects, "created the invocation log stream");
                        break info;
                    }
                    // Another node created it meanwhile: check its config.
                    Err(e) if e.code() == Some(ErrorCode::STREAM_NAME_EXIST) => continue,
                    Err(e) if e.code() == Some(ErrorCode::STREAM_SUBJECT_OVERLAP) => {
                        return Err(Error::internal(format!(
                            "cannot create the stream {name} at {url}: another stream already \
                             takes the subjects {}.*; choose another subject prefix or remove \
                             that stream",
                            o.subject_prefix
                        )));
                    }
                    Err(e) => {
                        return Err(error::api(e, &format!("creating the stream {name}"), url));
                    }
                }
            }
            Err(e) => return Err(error::api(e, &format!("reading the stream {name}"), url)),
        }
    };
    let info = match check(&info.config, o) {
        Ok(None) => info,
        Ok(Some(update)) => {
            tracing::info!(stream = %name, "updating the stream's duplicate window and direct gets");
            api::<StreamInfo>(js, format!("STREAM.UPDATE.{name}"), &update)
                .await
                .map_err(|e| error::api(e, &format!("updating the stream {name}"), url))?
        }
        Err(problems) => {
            return Err(Error::internal(format!(
                "the stream {name} at {url} cannot be the invocation log: {}; delete it \
                 (`nats stream rm {name}`) if nothing in it is needed, or configure another \
                 stream name",
                problems.join("; ")
            )));
        }
    };
    Ok(format!("nats:{name}@{}", info.created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_problems(edit: impl FnOnce(&mut stream::Config), expected: &str) {
        let o = Options::default();
        let mut c = wanted(&o);
        edit(&mut c);
        let problems = check(&c, &o).expect_err("incompatible").join("; ");
        assert!(problems.contains(expected), "{problems}");
    }

    #[test]
    fn a_stream_the_log_cannot_rely_on_is_refused() {
        check_problems(|c| c.subjects.push("other.>".into()), "its subjects are");
        check_problems(|c| c.retention = RetentionPolicy::Limits, "retention");
        check_problems(|c| c.storage = StorageType::Memory, "not File");
        check_problems(|c| c.max_age = Duration::from_secs(60), "dropped");
        check_problems(|c| c.no_ack = true, "no_ack");
    }

    #[test]
    fn settings_the_log_owns_are_updated() {
        let o = Options::default();
        assert!(check(&wanted(&o), &o).unwrap().is_none());
        let mut c = wanted(&o);
        c.allow_direct = false;
        c.duplicate_window = Duration::from_secs(1);
        let update = check(&c, &o).unwrap().expect("an update");
        assert!(update.allow_direct);
        assert_eq!(update.duplicate_window, o.duplicate_window);
        // Limits that make appends fail rather than drop entries are fine.
        let mut c = wanted(&o);
        c.max_bytes = 1 << 30;
        c.discard = stream::DiscardPolicy::New;
        assert!(check(&c, &o).is_ok());
    }

    #[test]
    fn the_url_query_names_the_stream_and_subjects() {
        let mut o = Options::default();
        let url = apply_query(
            "nats://a:1?stream=S1&subjects=x.y, nats://b:2?replicas=3",
            &mut o,
        )
        .unwrap();
        assert_eq!(url, "nats://a:1,nats://b:2");
        assert_eq!(
            (o.stream.as_str(), o.subject_prefix.as_str(), o.replicas),
            ("S1", "x.y", 3)
        );
        assert_eq!(o.consumer_prefix, Options::default().consumer_prefix);
        let e = apply_query("nats://a?strem=x", &mut o).unwrap_err();
        assert!(e.message.contains("strem"), "{e}");
        assert!(apply_query("nats://a?replicas=many", &mut o).is_err());
    }

    #[test]
    fn options_that_break_the_layout_are_refused() {
        let check_bad = |edit: fn(&mut Options), expected: &str| {
            let mut o = Options::default();
            edit(&mut o);
            let e = validate(&o).unwrap_err();
            assert!(e.message.contains(expected), "{e}");
        };
        validate(&Options::default()).unwrap();
        check_bad(|o| o.stream = "a.b".into(), "stream");
        check_bad(|o| o.subject_prefix = "a..b".into(), "subject_prefix");
        check_bad(|o| o.subject_prefix = "a.*".into(), "subject_prefix");
        check_bad(|o| o.consumer_prefix = String::new(), "consumer_prefix");
        check_bad(|o| o.replicas = 0, "replicas");
        check_bad(|o| o.ack_wait = Duration::ZERO, "ack_wait");
    }
}
