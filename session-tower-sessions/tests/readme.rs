//! The root README's "Coming from tower-sessions / axum-login / loco /
//! salvo" section shows snippets that are compiled as doc tests elsewhere:
//! the salvo one in `examples-salvo`'s README (with salvo among that crate's
//! dependencies), every other one in this crate's README. This keeps each
//! shown snippet the same as the copy that is compiled.

use std::path::Path;

const SECTION: &str = "## Coming from tower-sessions / axum-login / loco / salvo";

/// The Rust code blocks of `markdown`, fences included.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.starts_with("```rust") => current = Some(format!("{line}\n")),
            None => {}
            Some(block) => {
                block.push_str(line);
                block.push('\n');
                if line == "```" {
                    blocks.extend(current.take());
                }
            }
        }
    }
    blocks
}

#[test]
fn root_readme_snippets_are_compiled_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let Ok(root) = std::fs::read_to_string(&root) else {
        // Built outside the workspace (from the published package).
        eprintln!(
            "note: no workspace README at {}; nothing to compare",
            root.display()
        );
        return;
    };
    let start = root.find(SECTION).expect("the root README has the section");
    let rest = &root[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];

    let ours = rust_blocks(include_str!("../README.md"));
    let salvo_readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples-salvo/README.md");
    let salvo = rust_blocks(
        &std::fs::read_to_string(&salvo_readme).expect("examples-salvo's README beside the root's"),
    );
    let shown = rust_blocks(section);
    assert!(
        shown.iter().any(|block| block.contains("salvo::")),
        "the section shows the salvo snippet"
    );
    assert!(
        shown.iter().any(|block| !block.contains("salvo::")),
        "the section shows the tower-sessions snippets"
    );
    for block in &shown {
        let (compiled, readme) = if block.contains("salvo::") {
            (&salvo, "examples-salvo/README.md")
        } else {
            (&ours, "session-tower-sessions/README.md")
        };
        assert!(
            compiled.contains(block),
            "a snippet of the root README's section is not in {readme}, \
             where it would be compiled:\n{block}"
        );
    }
}
