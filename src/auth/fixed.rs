//! Benchmark-only: a layer that hands every request the same [`Caller`]
//! without looking at any key, to measure what the real [`super::AuthLayer`]
//! costs. Compiled only with the `bench-noauth` feature; `src/main.rs`
//! refuses to compile the `fleetmind` binary with that feature, so no
//! release binary can contain it.

use super::Caller;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct FixedCallerLayer {
    caller: Caller,
}

impl FixedCallerLayer {
    pub fn new(caller: Caller) -> Self {
        Self { caller }
    }
}

impl<S> Layer<S> for FixedCallerLayer {
    type Service = FixedCaller<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FixedCaller {
            inner,
            caller: self.caller.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FixedCaller<S> {
    inner: S,
    caller: Caller,
}

impl<S, B> Service<http::Request<B>> for FixedCaller<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.caller.clone());
        self.inner.call(req)
    }
}
