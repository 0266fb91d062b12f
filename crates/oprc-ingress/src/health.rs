//! Readiness of the node: it takes calls unless it is shutting down or a
//! storage engine it needs does not answer. The node's monitor reports
//! each engine here; `/readyz` names the ones that are down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// What `/readyz` answers from.
#[derive(Debug, Default)]
pub struct Health {
    stopping: AtomicBool,
    /// Engine (in words, e.g. `state store postgresql postgres://db/oprc`)
    /// → why it is down.
    down: Mutex<BTreeMap<String, String>>,
}

impl Health {
    /// The node started shutting down: not ready from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Records whether `engine` answers (`problem: None`) or not. Returns
    /// whether that changed, so the caller logs transitions only.
    pub fn set(&self, engine: &str, problem: Option<String>) -> bool {
        let mut down = self.down.lock();
        match problem {
            Some(p) => down.insert(engine.to_owned(), p).is_none(),
            None => down.remove(engine).is_some(),
        }
    }

    /// `Ok` when ready; else every reason, one per line.
    pub fn check(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("not ready: shutting down".to_owned());
        }
        let down = self.down.lock();
        if down.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = down
            .iter()
            .map(|(engine, why)| format!("not ready: the {engine} does not answer: {why}"))
            .collect();
        Err(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn readiness_names_each_engine_that_is_down() {
        let h = Health::default();
        assert_eq!(h.check(), Ok(()));
        assert!(h.set(
            "state store postgres://db/oprc",
            Some("connection refused".into())
        ));
        assert!(!h.set(
            "state store postgres://db/oprc",
            Some("still refused".into())
        ));
        assert!(h.set("invocation log nats://mq:4222", Some("disconnected".into())));
        let text = h.check().unwrap_err();
        assert!(text.contains("the state store postgres://db/oprc does not answer: still refused"));
        assert!(text.contains("the invocation log nats://mq:4222 does not answer: disconnected"));
        assert!(h.set("state store postgres://db/oprc", None));
        assert!(!h.set("state store postgres://db/oprc", None));
        h.set("invocation log nats://mq:4222", None);
        assert_eq!(h.check(), Ok(()));
        h.stop();
        assert_eq!(h.check().unwrap_err(), "not ready: shutting down");
    }
}
