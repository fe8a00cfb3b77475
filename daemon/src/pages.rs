//! Server-rendered HTML pages and the template environment they share with mail.

use minijinja::Environment;

/// A template environment holding every embedded template from the `web` crate.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in farmhand_web::TEMPLATES {
        // Embedded templates are checked by the tests; a broken one is a build defect,
        // so fail loudly at start-up rather than serve half a page.
        if let Err(e) = env.add_template(name, source) {
            panic!("embedded template {name} does not parse: {e}");
        }
    }
    env
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_embedded_template_parses() {
        let env = super::environment();
        for (name, _) in farmhand_web::TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
