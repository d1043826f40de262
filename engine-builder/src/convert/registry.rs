//! The converter registry: a value mapping (domain, op type, opset) to the
//! function that lowers such a node into network layers. Users extend or
//! override it before converting, as torch2trt's `@tensorrt_converter` does.

use super::ctx::NodeCtx;
use super::ConvertError;
use crate::onnx::normalize_domain;
use std::collections::HashMap;
use std::ops::RangeInclusive;

/// Lowers one node: reads its inputs and attributes from the context, adds
/// layers, and binds every output it produces.
pub type ConvertFn = fn(&mut NodeCtx<'_>) -> Result<(), ConvertError>;

#[derive(Clone)]
pub struct Converter {
    /// Opset versions (of the node's domain) this converter handles.
    pub opsets: RangeInclusive<u32>,
    pub func: ConvertFn,
}

#[derive(Clone, Default)]
pub struct Registry {
    map: HashMap<(String, String), Vec<Converter>>,
}

impl Registry {
    /// A registry with no converters.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every built-in converter.
    pub fn with_defaults() -> Self {
        let mut r = Self::empty();
        super::ops::register_all(&mut r);
        r
    }

    /// Registers `func` for `op_type` of `domain` ("" or "ai.onnx" is the
    /// default domain) over `opsets`. A later registration wins where ranges
    /// overlap, so users can override built-ins.
    pub fn register(
        &mut self,
        domain: &str,
        op_type: &str,
        opsets: RangeInclusive<u32>,
        func: ConvertFn,
    ) {
        self.map
            .entry((normalize_domain(domain).to_string(), op_type.to_string()))
            .or_default()
            .push(Converter { opsets, func });
    }

    /// The converter for a node of `op_type` in `domain` at `opset`.
    pub fn lookup(&self, domain: &str, op_type: &str, opset: u32) -> Option<&Converter> {
        self.map
            .get(&(normalize_domain(domain).to_string(), op_type.to_string()))?
            .iter()
            .rev()
            .find(|c| c.opsets.contains(&opset))
    }

    /// The function that converts a node: the registered converter, else,
    /// for a node of a custom (non-default) domain, the plugin of the same
    /// name when one is registered (built in or from a loaded library).
    pub fn resolve(&self, domain: &str, op_type: &str, opset: u32) -> Option<ConvertFn> {
        if let Some(c) = self.lookup(domain, op_type, opset) {
            return Some(c.func);
        }
        let custom = !normalize_domain(domain).is_empty();
        (custom && jetrt_engine::plugin::registry::lookup_name(op_type).is_some())
            .then_some(super::ops::plugin::custom_op as ConvertFn)
    }

    /// Opset ranges supported for an op, merged and sorted.
    pub fn opsets(&self, domain: &str, op_type: &str) -> Vec<RangeInclusive<u32>> {
        let Some(cs) = self
            .map
            .get(&(normalize_domain(domain).to_string(), op_type.to_string()))
        else {
            return vec![];
        };
        let mut rs: Vec<RangeInclusive<u32>> = cs.iter().map(|c| c.opsets.clone()).collect();
        rs.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u32>> = Vec::new();
        for r in rs {
            match merged.last_mut() {
                Some(m) if *r.start() <= m.end().saturating_add(1) => {
                    *m = *m.start()..=(*m.end()).max(*r.end());
                }
                _ => merged.push(r),
            }
        }
        merged
    }

    /// Every (domain, op type) with at least one converter.
    pub fn ops(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.map.keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(_: &mut NodeCtx<'_>) -> Result<(), ConvertError> {
        Ok(())
    }

    fn b(_: &mut NodeCtx<'_>) -> Result<(), ConvertError> {
        Err(ConvertError::new("b"))
    }

    #[test]
    fn later_registrations_override_and_ranges_merge() {
        let mut r = Registry::empty();
        r.register("", "Foo", 1..=10, a);
        r.register("ai.onnx", "Foo", 5..=12, b);
        let is = |c: Option<&Converter>, f: ConvertFn| {
            c.is_some_and(|c| std::ptr::fn_addr_eq(c.func, f))
        };
        assert!(is(r.lookup("", "Foo", 3), a));
        assert!(is(r.lookup("ai.onnx", "Foo", 7), b));
        assert!(r.lookup("", "Foo", 13).is_none());
        assert!(r.lookup("custom", "Foo", 7).is_none());
        assert_eq!(r.opsets("", "Foo"), vec![1..=12]);
    }
}
