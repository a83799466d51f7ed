//! A few values looked up by name: the collections' resolvers and validators, the registered mutations.

/// Values by name, in a list. An app names a handful, and a list costs the wasm far less code than a hash
/// map of its own (every map type is compiled again for each key and value type).
#[derive(Clone, Debug)]
pub struct ByName<V>(Vec<(String, V)>);

impl<V> Default for ByName<V> {
    fn default() -> Self {
        ByName(Vec::new())
    }
}

impl<V> ByName<V> {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Names `value` `name`, in place of the value that had the name.
    pub fn insert(&mut self, name: String, value: V) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = value,
            None => self.0.push((name, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_holds_its_last_value() {
        let mut map = ByName::default();
        assert_eq!(map.get("a"), None);
        map.insert("a".to_owned(), 1);
        map.insert("b".to_owned(), 2);
        map.insert("a".to_owned(), 3);
        assert_eq!(
            (map.get("a"), map.get("b"), map.get("c")),
            (Some(&3), Some(&2), None)
        );
    }
}
