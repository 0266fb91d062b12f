use super::*;

const IDLE: Duration = Duration::from_secs(10);

fn state(min: u32, max: u32, concurrency: u32) -> PoolState {
    let limits = Limits {
        min,
        max,
        concurrency,
        idle_timeout: IDLE,
    };
    PoolState::new(limits, CancellationToken::new())
}

/// Marks every starting instance ready, on ports 9000 + id.
fn all_ready(st: &mut PoolState, now: Instant) {
    let starting: Vec<u64> = st
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Starting)
        .map(|i| i.id)
        .collect();
    for id in starting {
        let uri: Uri = format!("http://127.0.0.1:{}/", 9000 + id)
            .parse()
            .expect("valid uri");
        st.ready(id, uri, None, now);
    }
}

fn states(st: &PoolState) -> Vec<(u64, InstanceState, u32)> {
    st.instances
        .iter()
        .map(|i| (i.id, i.state, i.in_flight))
        .collect()
}

#[test]
fn min_instances_start_eagerly_and_only_once() {
    let now = Instant::now();
    let mut st = state(2, 4, 1);
    assert_eq!(st.reconcile(now), vec![1, 2]);
    assert_eq!(st.reconcile(now), Vec::<u64>::new());
}

#[test]
fn waiting_calls_scale_up_but_never_above_max() {
    let now = Instant::now();
    let mut st = state(0, 3, 2);
    assert!(st.reconcile(now).is_empty(), "no load, no instance");
    st.waiting = 3;
    assert_eq!(st.reconcile(now), vec![1, 2], "3 calls / 2 per instance");
    st.waiting = 50;
    assert_eq!(st.reconcile(now), vec![3]);
    assert!(st.reconcile(now).is_empty());
    assert_eq!(st.live(), 3);
}

#[test]
fn calls_go_to_the_least_busy_ready_instance_up_to_concurrency() {
    let now = Instant::now();
    let mut st = state(2, 2, 2);
    st.reconcile(now);
    assert_eq!(st.pick(now), None, "nothing ready yet");
    all_ready(&mut st, now);
    let picks: Vec<u64> = (0..4).map(|_| st.pick(now).expect("slot").0).collect();
    assert_eq!(picks, vec![1, 2, 1, 2]);
    assert_eq!(st.pick(now), None, "every instance at concurrency");
    st.release(2, now);
    assert_eq!(st.pick(now).map(|p| p.0), Some(2));
}

#[test]
fn idle_instances_drain_down_to_min_newest_first() {
    let t0 = Instant::now();
    let mut st = state(1, 3, 1);
    st.waiting = 3;
    st.reconcile(t0);
    all_ready(&mut st, t0);
    st.waiting = 0;
    let (first, _) = st.pick(t0).expect("slot");
    st.release(first, t0);

    assert!(st.reconcile(t0 + IDLE / 2).is_empty());
    assert!(st.instances.iter().all(|i| i.state == InstanceState::Ready));

    st.reconcile(t0 + IDLE);
    assert_eq!(
        states(&st),
        vec![
            (1, InstanceState::Ready, 0),
            (2, InstanceState::Draining, 0),
            (3, InstanceState::Draining, 0),
        ]
    );
    assert!(st.instances[1].stop.is_cancelled());
    assert!(!st.instances[0].stop.is_cancelled());
}

#[test]
fn scale_to_zero_then_cold_start() {
    let t0 = Instant::now();
    let mut st = state(0, 2, 4);
    st.waiting = 1;
    assert_eq!(st.reconcile(t0), vec![1]);
    all_ready(&mut st, t0);
    st.waiting = 0;
    st.reconcile(t0 + IDLE);
    assert_eq!(states(&st), vec![(1, InstanceState::Draining, 0)]);
    st.remove(1, &Exit::Stopped, t0 + IDLE);
    assert!(st.is_empty());
    st.waiting = 1;
    assert_eq!(st.reconcile(t0 + IDLE), vec![2], "ids are never reused");
}

#[test]
fn busy_instance_is_stopped_only_when_its_calls_are_done() {
    let now = Instant::now();
    let mut st = state(1, 1, 1);
    st.reconcile(now);
    all_ready(&mut st, now);
    let (id, _) = st.pick(now).expect("slot");
    st.retired = true;
    assert!(
        st.reconcile(now).is_empty(),
        "a retired pool starts nothing"
    );
    assert_eq!(states(&st), vec![(1, InstanceState::Draining, 1)]);
    assert!(!st.instances[0].stop.is_cancelled());
    assert_eq!(st.pick(now), None, "draining instances take no calls");
    st.release(id, now);
    assert!(st.instances[0].stop.is_cancelled());
}

#[test]
fn failed_starts_back_off_and_refuse_calls_meanwhile() {
    let t0 = Instant::now();
    let mut st = state(0, 1, 1);
    st.waiting = 1;
    assert_eq!(st.reconcile(t0), vec![1]);
    assert!(st.refusal(t0).is_none(), "an instance is starting");
    st.remove(1, &Exit::StartFailed("port taken".into()), t0);
    assert!(
        st.refusal(t0).is_none(),
        "the first failure is retried at once"
    );
    assert_eq!(st.reconcile(t0), vec![2]);
    st.remove(2, &Exit::StartFailed("exit status: 3".into()), t0);
    assert_eq!(
        st.refusal(t0),
        Some(InvokeError::Unavailable {
            reason: "exit status: 3".into()
        })
    );
    assert!(st.reconcile(t0).is_empty(), "backing off");
    let later = t0 + FIRST_BACKOFF;
    assert!(st.refusal(later).is_none());
    assert_eq!(st.reconcile(later), vec![3]);
    st.remove(3, &Exit::StartFailed("again".into()), later);
    assert!(
        st.reconcile(later + FIRST_BACKOFF).is_empty(),
        "backoff doubled"
    );
    assert_eq!(st.reconcile(later + 2 * FIRST_BACKOFF), vec![4]);
    all_ready(&mut st, later + 2 * FIRST_BACKOFF);
    assert_eq!(st.start_after, None, "a ready worker ends the back-off");
}

#[test]
fn crashed_instance_is_replaced_to_keep_min() {
    let now = Instant::now();
    let mut st = state(1, 1, 1);
    st.reconcile(now);
    all_ready(&mut st, now);
    st.remove(1, &Exit::Crashed("signal: 9".into()), now);
    assert!(st.refusal(now).is_none(), "a crash does not back off");
    assert_eq!(st.reconcile(now), vec![2]);
}

#[test]
fn instance_found_dead_by_a_call_leaves_rotation() {
    let now = Instant::now();
    let mut st = state(1, 2, 4);
    st.reconcile(now);
    all_ready(&mut st, now);
    st.spawned(1, Some(4242), 9001);
    let (id, _) = st.pick(now).expect("slot");
    st.call_broke(id, false, |_| false);
    assert_eq!(st.instances[0].state, InstanceState::Ready, "still alive");
    st.call_broke(id, false, |pid| pid == 4242);
    assert_eq!(st.instances[0].state, InstanceState::Draining);
    assert!(st.is_broken(id));
    assert_eq!(st.pick(now), None);
    assert_eq!(st.reconcile(now), vec![2], "replaced to keep min");
    st.release(id, now);
    assert!(st.instances[0].stop.is_cancelled());
}

#[test]
fn refused_connection_takes_the_instance_out_at_once() {
    let now = Instant::now();
    let mut st = state(0, 1, 4);
    st.waiting = 1;
    st.reconcile(now);
    all_ready(&mut st, now);
    let (id, _) = st.pick(now).expect("slot");
    st.call_broke(id, true, |_| false);
    assert!(st.is_broken(id));
    assert_eq!(st.instances[0].state, InstanceState::Draining);
}
