//! Calls from functions to other objects: the per-task bearer token.
//!
//! A task carries `callUrl` (the node's API base) and `callToken`. The token
//! is `oprc-call.<payload>.<mac>`: the payload (base64url JSON) names the
//! task's invocation, the class the function acts as, the call chain and an
//! expiry at the end of the task's timeout; the mac is HMAC-SHA256 of the
//! payload under the node's key. It grants invocations only, as that class;
//! the node that runs the task also refuses it once the task has answered
//! (its set of live tasks, kept by the invoker). Pure: no clock or IO but
//! what the caller passes in.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use oprc_core::{Chain, ClassKey, FunctionKey, InvocationId, InvocationRequest, ObjectRef};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Error;

/// Every call token starts with this.
pub const TOKEN_PREFIX: &str = "oprc-call.";

/// Longest token accepted (a chain is bounded, so are tokens).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How a node lets its tasks call other objects.
#[derive(Clone)]
pub struct Calls {
    /// The API base handed to tasks (`http://host:port`, no trailing `/`).
    pub url: String,
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What a verified token allows: calls as `cls`, within `chain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The task the token was issued to.
    pub inv: InvocationId,
    /// The class the function acts as (the class that declared its binding).
    pub cls: ClassKey,
    /// The chain the task's calls continue.
    pub chain: Chain,
    /// Milliseconds since the Unix epoch after which it is refused.
    pub exp: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the call token is malformed")]
    Malformed,
    #[error("the call token's signature does not match (issued by another node or changed)")]
    BadSignature,
    #[error("the call token has expired: it lives as long as the task it was given to")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

/// The chain the calls made by `req` continue (a task's calls, a macro's
/// steps): one call deeper, holding what `req`'s chain holds plus `holds`
/// (the object whose inbox `req` keeps while it waits for them).
pub(crate) fn chain_below(req: &InvocationRequest, holds: Option<ObjectRef>) -> Chain {
    let mut chain = req.chain.clone().unwrap_or_else(|| Chain {
        id: req.inv_id.clone(),
        held: Vec::new(),
        depth: 0,
        macros: Vec::new(),
    });
    chain.depth = chain.depth.saturating_add(1);
    if let Some(held) = holds
        && !chain.held.contains(&held)
    {
        chain.held.push(held);
    }
    chain
}

/// Refuses a call that its own chain would wait for forever (a mutating
/// call on an object the chain holds), that goes too deep, or a macro
/// (`macro_fn`) that would run inside itself.
pub(crate) fn check_chain(
    req: &InvocationRequest,
    mutating: bool,
    macro_fn: Option<&FunctionKey>,
    max_depth: u32,
) -> Result<(), Error> {
    let Some(chain) = &req.chain else {
        return Ok(());
    };
    if let Some(f) = macro_fn
        && chain.macros.contains(f)
    {
        return Err(Error::RecursiveMacro {
            function: f.to_string(),
        });
    }
    if chain.depth > max_depth {
        return Err(Error::ChainTooDeep {
            depth: chain.depth,
            limit: max_depth,
        });
    }
    if let Some(oid) = &req.oid
        && mutating
        && chain.holds(&req.cls, oid)
    {
        return Err(Error::Reentrant {
            cls: req.cls.to_string(),
            oid: oid.to_string(),
            fb: req.fb.clone(),
        });
    }
    Ok(())
}

impl Calls {
    pub fn new(url: impl Into<String>, key: impl Into<Vec<u8>>) -> Self {
        let url: String = url.into();
        Self {
            url: url.trim_end_matches('/').to_owned(),
            key: key.into().into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any size");
        mac.update(b"oprc call token v1\0");
        mac
    }

    /// The token of a grant.
    pub fn issue(&self, grant: &Grant) -> String {
        let payload = serde_json::to_vec(grant).expect("a grant always encodes");
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{TOKEN_PREFIX}{payload}.{sig}")
    }

    /// The grant of a token, checked at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let rest = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Malformed)?;
        let (payload, sig) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let grant: Grant = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        if now_ms > grant.exp {
            return Err(TokenError::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use oprc_core::{ObjectId, ObjectRef};

    use super::*;

    fn grant(exp: i64) -> Grant {
        let cls = ClassKey::new("p.c").unwrap();
        Grant {
            inv: InvocationId::new("inv-1").unwrap(),
            cls: cls.clone(),
            chain: Chain {
                id: InvocationId::new("root").unwrap(),
                held: vec![ObjectRef {
                    cls,
                    oid: ObjectId::new("o1").unwrap(),
                }],
                depth: 1,
                macros: Vec::new(),
            },
            exp,
        }
    }

    #[test]
    fn chains_hold_the_objects_their_callers_wait_on() {
        let cls = ClassKey::new("p.c").unwrap();
        let a = ObjectId::new("a").unwrap();
        let mut req = InvocationRequest::new(cls.clone(), Some(a.clone()), "f");
        // A client's call is not checked, and starts a chain of its own.
        assert!(check_chain(&req, true, None, 4).is_ok());
        let held = ObjectRef { cls, oid: a };
        let below = chain_below(&req, Some(held.clone()));
        assert_eq!((below.id.clone(), below.depth), (req.inv_id.clone(), 1));
        // A mutating call back on `a` would wait for its own caller.
        req.chain = Some(below);
        assert!(matches!(
            check_chain(&req, true, None, 4),
            Err(Error::Reentrant { .. })
        ));
        assert!(check_chain(&req, false, None, 4).is_ok());
        // Another object is fine, and holding twice counts once.
        req.oid = Some(ObjectId::new("b").unwrap());
        assert!(check_chain(&req, true, None, 4).is_ok());
        let deeper = chain_below(&req, Some(held));
        assert_eq!((deeper.held.len(), deeper.depth), (1, 2));
        // Too deep.
        req.chain = Some(Chain { depth: 5, ..deeper });
        assert!(matches!(
            check_chain(&req, false, None, 4),
            Err(Error::ChainTooDeep { .. })
        ));
    }

    #[test]
    fn tokens_round_trip_until_they_expire() {
        let calls = Calls::new("http://127.0.0.1:1/", b"key".to_vec());
        assert_eq!(calls.url, "http://127.0.0.1:1");
        let token = calls.issue(&grant(1000));
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(calls.verify(&token, 1000), Ok(grant(1000)));
        assert_eq!(calls.verify(&token, 1001), Err(TokenError::Expired));
    }

    #[test]
    fn changed_or_foreign_tokens_are_refused() {
        let calls = Calls::new("http://x", b"key".to_vec());
        let other = Calls::new("http://x", b"other key".to_vec());
        let token = calls.issue(&grant(1000));
        assert_eq!(other.verify(&token, 0), Err(TokenError::BadSignature));
        // Another payload under the same signature.
        let (_, sig) = token.rsplit_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Grant {
                cls: ClassKey::new("p.admin").unwrap(),
                ..grant(1000)
            })
            .unwrap(),
        );
        let forged = format!("{TOKEN_PREFIX}{forged_payload}.{sig}");
        assert_eq!(calls.verify(&forged, 0), Err(TokenError::BadSignature));
        for bad in [
            "",
            "oprc-call.",
            "oprc-call.x",
            "Bearer x",
            "oprc-call.a.b!",
        ] {
            assert!(calls.verify(bad, 0).is_err(), "{bad}");
        }
        let huge = format!("{TOKEN_PREFIX}{}", "a".repeat(MAX_TOKEN_BYTES));
        assert_eq!(calls.verify(&huge, 0), Err(TokenError::Malformed));
    }
}
