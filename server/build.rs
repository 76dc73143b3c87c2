//! Rebuilds the server when a file of the sample storefront changes, appears or goes away (it is
//! built into the binary: `storefront::files`), or when a migration is added (`sqlx::migrate!`
//! embeds them too).

fn main() {
    println!("cargo:rerun-if-changed=storefront/sample");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations-postgres");
}
