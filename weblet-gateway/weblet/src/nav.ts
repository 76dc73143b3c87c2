// Navigation with a back stack: every screen the person opened stays under the one on top, so
// Back returns to exactly where they came from (the same category, scrolled to the same place).
// Pure (no DOM): the app supplies the function that shows a route.

export interface Entry<R> {
  route: R;
  /** Where the screen was scrolled when the person left it; restored when they come back. */
  scrollTop: number;
}

export class Navigator<R> {
  private stack: Entry<R>[] = [];
  private show: (route: R, entry: Entry<R>) => void = () => {};
  private leaving: (entry: Entry<R>) => void = () => {};

  /** Sets how a route is shown, and what to remember of a screen as it is left. */
  attach(show: (route: R, entry: Entry<R>) => void, leaving: (entry: Entry<R>) => void = () => {}): void {
    this.show = show;
    this.leaving = leaving;
  }

  /** The entry on top, if any. */
  current(): Entry<R> | undefined {
    return this.stack[this.stack.length - 1];
  }

  /** The routes from the bottom of the stack to the top. */
  routes(): R[] {
    return this.stack.map((e) => e.route);
  }

  /** Opens a screen on top of the current one. */
  go(route: R): void {
    this.leave();
    this.stack.push({ route, scrollTop: 0 });
    this.render();
  }

  /** Replaces the screen on top (a step that should not be returned to). */
  replace(route: R): void {
    this.stack.pop();
    this.stack.push({ route, scrollTop: 0 });
    this.render();
  }

  /** Forgets every screen and opens this one (a fresh start). */
  reset(route: R): void {
    this.stack = [{ route, scrollTop: 0 }];
    this.render();
  }

  /** Forgets every screen and stacks these, bottom first; only the last one is shown (Back
   * returns to the one under it). Nothing happens when `routes` is empty. */
  resetTo(routes: R[]): void {
    if (routes.length === 0) return;
    this.stack = routes.map((route) => ({ route, scrollTop: 0 }));
    this.render();
  }

  /** Returns to the screen under the current one; false (and nothing happens) at the bottom. */
  back(): boolean {
    if (this.stack.length < 2) return false;
    this.stack.pop();
    this.render();
    return true;
  }

  /** Returns to the nearest screen below the top that matches; false (nothing happens) if none does. */
  backTo(match: (route: R) => boolean): boolean {
    for (let i = this.stack.length - 2; i >= 0; i--) {
      if (match(this.stack[i].route)) {
        this.stack.length = i + 1;
        this.render();
        return true;
      }
    }
    return false;
  }

  /** Shows the screen on top again (Try again). */
  reload(): void {
    this.render();
  }

  private leave(): void {
    const top = this.current();
    if (top) this.leaving(top);
  }

  private render(): void {
    const top = this.current();
    if (top) this.show(top.route, top);
  }
}
