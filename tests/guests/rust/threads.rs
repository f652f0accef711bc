//! Rust std threads for x86_64-unknown-linux-musl (static): spawn and join, mpsc channels,
//! Arc<Mutex>, RwLock, Condvar, Barrier, scoped threads, named threads, park/unpark, thread_local!
//! destructors at thread exit, atomics, and a panicking thread caught by join(). Only the main thread
//! prints to stdout, and only values that are the same on every run: never thread ids, times or the
//! machine's parallelism. The panic hook writes its own line to stderr instead of the default message
//! (whose "panicked at" the harness reads as secure-run itself panicking).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// Sends its index on a channel when dropped: kept in a thread_local!, when its thread exits.
struct ExitNotice(mpsc::Sender<usize>, usize);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

thread_local! {
    static LOCAL: Cell<u64> = const { Cell::new(7) };
    static NOTICE: RefCell<Option<ExitNotice>> = const { RefCell::new(None) };
}

fn sum_range(from: u64, to: u64) -> u64 {
    (from..to).map(|i| i.wrapping_mul(i) % 1_000_003).sum()
}

fn main() {
    let stdout = io::stdout();
    let mut out = stdout.lock();

    // Spawn and join: each worker sums a range, the results come back through join().
    let workers: Vec<_> = (0..8u64).map(|n| thread::spawn(move || sum_range(n * 100_000, (n + 1) * 100_000))).collect();
    let joined: u64 = workers.into_iter().map(|worker| worker.join().unwrap()).sum();
    writeln!(out, "joined sum: {joined} (expected {})", sum_range(0, 800_000)).unwrap();
    assert_eq!(joined, sum_range(0, 800_000));

    // mpsc: workers send (index, partial sum) pairs; the receiver ends when every sender is gone.
    let (sender, receiver) = mpsc::channel();
    for n in 0..6u64 {
        let sender = sender.clone();
        thread::spawn(move || {
            for chunk in 0..10u64 {
                let from = n * 1_000_000 + chunk * 1000;
                sender.send((n, sum_range(from, from + 1000))).unwrap();
            }
        });
    }
    drop(sender);
    let mut per_worker: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
    for (n, partial) in receiver {
        let entry = per_worker.entry(n).or_default();
        entry.0 += 1;
        entry.1 += partial;
    }
    writeln!(out, "channel: {per_worker:?}").unwrap();

    // A bounded channel (sync_channel) of capacity 2 between one producer and the main thread.
    let (sender, receiver) = mpsc::sync_channel::<u32>(2);
    let producer = thread::spawn(move || (1..=1000).for_each(|i| sender.send(i).unwrap()));
    let received: u32 = receiver.iter().sum();
    producer.join().unwrap();
    writeln!(out, "sync_channel sum: {received}").unwrap();

    // Arc<Mutex>: 4 threads x 50000 increments.
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..50_000 {
                    *counter.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|handle| handle.join().unwrap());
    writeln!(out, "mutex counter: {} (strong count {})", *counter.lock().unwrap(), Arc::strong_count(&counter))
        .unwrap();

    // RwLock: readers see either the old or the new vector, never a torn one.
    let shared = Arc::new(RwLock::new(vec![1u64; 64]));
    let torn = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (shared, torn) = (Arc::clone(&shared), Arc::clone(&torn));
            thread::spawn(move || {
                for _ in 0..2000 {
                    let values = shared.read().unwrap();
                    if values.iter().any(|&value| value != values[0]) {
                        torn.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for round in 2..200u64 {
        shared.write().unwrap().iter_mut().for_each(|value| *value = round);
    }
    readers.into_iter().for_each(|reader| reader.join().unwrap());
    writeln!(out, "rwlock: last {} torn {}", shared.read().unwrap()[63], torn.load(Ordering::Relaxed)).unwrap();

    // Condvar: a worker waits for a flag the main thread sets, then answers.
    let pair = Arc::new((Mutex::new((false, 0u32)), Condvar::new()));
    let waiter = {
        let pair = Arc::clone(&pair);
        thread::spawn(move || {
            let (lock, condvar) = &*pair;
            let mut state = condvar.wait_while(lock.lock().unwrap(), |state| !state.0).unwrap();
            state.1 = 42;
            condvar.notify_all();
        })
    };
    {
        let (lock, condvar) = &*pair;
        lock.lock().unwrap().0 = true;
        condvar.notify_one();
        let state = condvar.wait_while(lock.lock().unwrap(), |state| state.1 == 0).unwrap();
        writeln!(out, "condvar answer: {}", state.1).unwrap();
    }
    waiter.join().unwrap();
    let (lock, condvar) = (Mutex::new(()), Condvar::new());
    let started = Instant::now();
    let (_guard, timeout) = condvar.wait_timeout(lock.lock().unwrap(), Duration::from_millis(30)).unwrap();
    writeln!(out, "condvar wait_timeout timed out: {}", timeout.timed_out()).unwrap();
    writeln!(out, "waited at least 30 ms: {}", started.elapsed() >= Duration::from_millis(30)).unwrap();

    // Barrier: exactly one leader among 5 threads; all of them pass it.
    let barrier = Arc::new(Barrier::new(5));
    let passed = Arc::new(AtomicUsize::new(0));
    let members: Vec<_> = (0..5)
        .map(|_| {
            let (barrier, passed) = (Arc::clone(&barrier), Arc::clone(&passed));
            thread::spawn(move || {
                let leader = barrier.wait().is_leader();
                passed.fetch_add(1, Ordering::SeqCst);
                leader
            })
        })
        .collect();
    let leaders = members.into_iter().map(|member| member.join().unwrap()).filter(|&leader| leader).count();
    writeln!(out, "barrier: {} passed, {leaders} leader", passed.load(Ordering::SeqCst)).unwrap();

    // Scoped threads borrow from the stack.
    let mut data: Vec<u64> = (1..=1000).collect();
    let total = AtomicUsize::new(0);
    thread::scope(|scope| {
        for chunk in data.chunks_mut(250) {
            let total = &total;
            scope.spawn(move || {
                for value in chunk.iter_mut() {
                    *value *= 2;
                }
                total.fetch_add(chunk.iter().sum::<u64>() as usize, Ordering::SeqCst);
            });
        }
    });
    writeln!(out, "scoped: total {} first {} last {}", total.load(Ordering::SeqCst), data[0], data[999]).unwrap();

    // Named threads, thread_local! values per thread, and thread_local! destructors at thread exit.
    let (sender, receiver) = mpsc::channel();
    let named: Vec<_> = (0..3usize)
        .map(|n| {
            let sender = sender.clone();
            thread::Builder::new()
                .name(format!("worker-{n}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let fresh = LOCAL.with(Cell::get);
                    LOCAL.with(|local| local.set(100 + n as u64));
                    thread::yield_now();
                    NOTICE.with(|notice| *notice.borrow_mut() = Some(ExitNotice(sender, n)));
                    (thread::current().name().map(str::to_owned), fresh, LOCAL.with(Cell::get))
                })
                .unwrap()
        })
        .collect();
    drop(sender);
    LOCAL.with(|local| local.set(1));
    for handle in named {
        let (name, fresh, local) = handle.join().unwrap();
        writeln!(out, "named thread {name:?}: thread_local fresh {fresh} then {local}").unwrap();
    }
    let mut notices: Vec<usize> = receiver.iter().collect();
    notices.sort_unstable();
    writeln!(out, "thread_local destructors ran for {notices:?}; main's value {}", LOCAL.with(Cell::get)).unwrap();
    writeln!(out, "main thread name: {:?}", thread::current().name()).unwrap();

    // park/unpark: the worker parks until the main thread has set the flag and unparked it.
    let flag = Arc::new(AtomicBool::new(false));
    let parked = {
        let flag = Arc::clone(&flag);
        thread::spawn(move || {
            while !flag.load(Ordering::Acquire) {
                thread::park();
            }
            "unparked"
        })
    };
    thread::sleep(Duration::from_millis(10));
    flag.store(true, Ordering::Release);
    parked.thread().unpark();
    writeln!(out, "park: {}", parked.join().unwrap()).unwrap();

    // OnceLock initialised by exactly one of several racing threads.
    static ONCE: OnceLock<u32> = OnceLock::new();
    static INITS: AtomicUsize = AtomicUsize::new(0);
    let racers: Vec<_> = (0..6)
        .map(|n| {
            thread::spawn(move || {
                *ONCE.get_or_init(|| {
                    INITS.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(5));
                    1000 + n
                })
            })
        })
        .collect();
    let values: Vec<u32> = racers.into_iter().map(|racer| racer.join().unwrap()).collect();
    writeln!(
        out,
        "OnceLock: {} init(s), all threads agree: {}",
        INITS.load(Ordering::SeqCst),
        values.iter().all(|&value| value == values[0])
    )
    .unwrap();

    // A panicking thread: join() returns Err with the payload; the process goes on.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload.downcast_ref::<String>().map(String::as_str).or(payload.downcast_ref::<&str>().copied());
        eprintln!("panic hook: {message:?} in thread {:?}", thread::current().name());
    }));
    let panicking = thread::Builder::new().name("doomed".into()).spawn(|| -> u32 { panic!("boom {}", 6 * 7) }).unwrap();
    match panicking.join() {
        Ok(value) => writeln!(out, "panicking thread returned {value}").unwrap(),
        Err(payload) => {
            writeln!(out, "panicking thread: Err({:?})", payload.downcast_ref::<String>()).unwrap();
        }
    }
    let poisoned = Arc::new(Mutex::new(5));
    {
        let poisoned = Arc::clone(&poisoned);
        let _ = thread::spawn(move || {
            let _guard = poisoned.lock().unwrap();
            panic!("poison");
        })
        .join();
    }
    writeln!(
        out,
        "mutex poisoned: {} value {}",
        poisoned.is_poisoned(),
        *poisoned.lock().unwrap_or_else(|e| e.into_inner())
    )
    .unwrap();

    writeln!(out, "rust threads ok").unwrap();
}
