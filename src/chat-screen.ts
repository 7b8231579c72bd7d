/**
 * What the chat client prints, as lines that do not run into each other: a streaming reply
 * and a question waiting for its answer leave their line open, and whatever comes next
 * starts on a line of its own. The question stays the last thing on screen: it is printed
 * again below whatever is printed while it waits.
 *
 * @example
 * const screen = new Screen(process.stdout, { echoes: process.stdin.isTTY === true });
 * screen.ask('allow call_1_1? [y/N] ');
 * screen.line('[idle]'); // "\n[idle]\nallow call_1_1? [y/N] "
 */
export class Screen {
  readonly #out: NodeJS.WritableStream;
  readonly #echoes: boolean;
  /** The cursor is not at the start of a line. */
  #column = false;
  /** The question waiting for its answer, `''` when none. */
  #question = '';
  /** The open line holds the question (so it need not be printed again). */
  #questionShown = false;

  /** `echoes`: the input is a terminal, whose Enter ends the line the user typed on. */
  constructor(out: NodeJS.WritableStream, { echoes }: { echoes: boolean }) {
    this.#out = out;
    this.#echoes = echoes;
  }

  /** Text as it comes (a reply's delta), on the open line. */
  write(text: string): void {
    if (text === '') return;
    this.#out.write(text);
    this.#column = !text.endsWith('\n');
    this.#questionShown = false;
  }

  /** A line of its own. */
  line(text: string): void {
    this.write(`${this.#column ? '\n' : ''}${text}\n`);
    this.#showQuestion();
  }

  /** A reply starts streaming: `< ` on a fresh line. */
  startReply(): void {
    this.write(`${this.#column ? '\n' : ''}< `);
  }

  /** The reply is complete: its line ends. */
  endReply(): void {
    if (this.#column && !this.#questionShown) this.write('\n');
    this.#showQuestion();
  }

  /** Asks `question` and keeps it on screen until {@link unask}. */
  ask(question: string): void {
    this.#question = question;
    this.#questionShown = false;
    this.#showQuestion();
  }

  /** The question is answered or withdrawn. */
  unask(): void {
    this.#question = '';
    this.#questionShown = false;
  }

  /** The user entered a line: on a terminal the cursor is now at the start of the next one. */
  typed(): void {
    if (!this.#echoes) return;
    this.#column = false;
    this.#questionShown = false;
  }

  #showQuestion(): void {
    if (!this.#question || this.#questionShown) return;
    this.write(`${this.#column ? '\n' : ''}${this.#question}`);
    this.#questionShown = true;
  }
}
