'use strict';
// The original architecture's services as the benchmark baseline: Node.js with koa 1.x
// (generator middleware) and koa-router 5.x, one process per service, data loaded from the
// seed JSON files at start-up, one log line per request to stdout.
// Written from the original API as the README describes it (the routes and seed data).
//
// Usage: PORT=3000 node server.js users|threads|posts

const path = require('path');
const koa = require('koa');
const Router = require('koa-router');

const SEED_DIR = path.join(__dirname, '..', '..', 'src', 'microforum', 'services', 'seed');
const service = process.argv[2];
const port = parseInt(process.env.PORT || '3000', 10);

if (['users', 'threads', 'posts'].indexOf(service) < 0) {
  console.error('usage: node server.js users|threads|posts');
  process.exit(2);
}

const db = require(path.join(SEED_DIR, service + '.json'));
const app = koa();
const router = new Router();

// One log line per request, as the original did.
app.use(function *logRequest(next) {
  const start = new Date();
  yield next;
  const ms = new Date() - start;
  console.log('%s %s - %s', this.method, this.url, ms);
});

// Unknown ids answer an empty 204, as the original did (the body is left undefined).
const routes = {
  users: function (r) {
    r.get('/api/users', function *() { this.body = db.users; });
    r.get('/api/users/:userId', function *() {
      const id = parseInt(this.params.userId, 10);
      this.body = db.users.find(function (u) { return u.id === id; });
    });
  },
  threads: function (r) {
    r.get('/api/threads', function *() { this.body = db.threads; });
    r.get('/api/threads/:threadId', function *() {
      const id = parseInt(this.params.threadId, 10);
      this.body = db.threads.find(function (t) { return t.id === id; });
    });
  },
  posts: function (r) {
    r.get('/api/posts', function *() { this.body = db.posts; });
    r.get('/api/posts/in-thread/:threadId', function *() {
      const id = parseInt(this.params.threadId, 10);
      this.body = db.posts.filter(function (p) { return p.thread === id; });
    });
    r.get('/api/posts/by-user/:userId', function *() {
      const id = parseInt(this.params.userId, 10);
      this.body = db.posts.filter(function (p) { return p.user === id; });
    });
  },
};

routes[service](router);
router.get('/api/', function *() { this.body = 'API ready to receive requests'; });
router.get('/', function *() { this.body = 'Ready to receive requests'; });

app.use(router.routes());
app.use(router.allowedMethods());
app.listen(port, '127.0.0.1');
console.log('Worker started');
