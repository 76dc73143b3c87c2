//! Rebuilds the gateway when a file of the built weblet changes, appears or goes away: the files
//! are embedded in the binary (`statics::BuiltWeblet`).

fn main() {
    println!("cargo:rerun-if-changed=weblet/dist");
}
